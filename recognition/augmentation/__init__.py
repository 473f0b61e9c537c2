"""The augmentation study (issues 19, 28): can images added at enrolment help the distilled facenet name people
wearing what their enrolment photos lack, and how close do GAN edits come to a real photo?

- ``verified_edits``: the GAN faces (edits, reconstructions, samples), each judged by the teacher, and their folder;
- ``arms``: what each arm adds to a roster person's enrolment (baseline, classic, oracle, reconstruction, GAN);
- ``experiment``: every recognizer, arm, roster draw, seed and oracle turn as per-photo outcomes;
- ``effects``: paired effects over people (BCa intervals, sign-flip tests, Holm), the oracle share and power.
"""
