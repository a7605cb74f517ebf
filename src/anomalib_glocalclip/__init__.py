"""GlocalCLIP and AnoCLIP zero-shot anomaly detection for Anomalib."""
