"""What a file says about its own origin: C2PA content credentials and AI-generation markers in ordinary metadata.
Bottom layer beside ingest, face and models; never mixed into the fake probability."""
