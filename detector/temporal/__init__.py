"""Temporal evidence: how a face's 68 landmarks move over short runs of consecutive frames.

Single-frame texture did not transfer to fakes of unseen generators; motion did (the published LRNet, reading only
landmark motion, beat every single-frame model measured on videos no one here chose). The modules, each one job:

* :mod:`.windows`: which runs of consecutive frames (windows) a video is read in;
* :mod:`.landmarks`: 68 landmarks per frame of a window on the followed face box, smoothed over time and normalised;
* :mod:`.lrnet`: the LRNet network in Keras, loadable from the published PyTorch weights;
* :mod:`.model`: the temporal task model (position and velocity networks) with its card and clip/video scoring;
* :mod:`.branch`: the scanner stage that turns a video and its face tracks into per-window scores.
"""
