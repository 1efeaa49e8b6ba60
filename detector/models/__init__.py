"""The model: backbones and their offline ImageNet weights, the task network, its card and the Scorer interface,
loading every model form, export for TF Serving and the TF Serving client. Bottom layer beside ingest, face, origin."""
