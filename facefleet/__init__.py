"""FaceFleet's job core: shared by the API, the workers and the embedded runner."""
