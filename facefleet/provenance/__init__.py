"""What every output says it is: the watermark in its frames (decided per task, applied in
the chunk loop), the C2PA manifest signed at the stitch, and ``verify`` for any file."""
