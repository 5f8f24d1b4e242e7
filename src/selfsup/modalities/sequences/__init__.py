"""Building blocks of step sequences shared by the modalities that read them (time series, audio): augmentations and
view recipes of sequences (augment.py) and the encoders of sequences (encoders.py). No modality is registered here;
keeping them below both modalities keeps the modalities independent of each other."""
