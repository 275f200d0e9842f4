"""Other ways to drive a face: a head pose (``pose``) or a voice (``audio``), sections 4.1 and 4.2 of the paper."""
