"""MuSc (ICLR 2024): zero-shot anomaly detection by mutual scoring of the images of one set."""
