"""A task's life: submission, planning, chunks and segments, outcomes, stitching, clean-up, deadlines, orphans."""
