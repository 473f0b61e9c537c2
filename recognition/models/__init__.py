"""The recognizers and how they are made: facenet's InceptionResnetV1 (pretrained elsewhere, trained here, or
distilled from dlib's teacher), the teacher itself, Fisherfaces, and the content-addressed embedding cache."""
