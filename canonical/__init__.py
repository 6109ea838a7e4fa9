"""The canonical model: records, drifts and recommendations, the one vocabulary every part shares.

Connectors write it, detectors read and answer in it, the store persists it, the bot shows it.
It imports no other alignbot package.
"""
