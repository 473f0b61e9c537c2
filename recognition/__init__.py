"""facenet-pytorch attendance recognizer (InceptionResnetV1 + MTCNN)."""
