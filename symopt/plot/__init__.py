"""Pictures of optimizers at work: trajectories on test landscapes and training curves.

matplotlib is optional (the ``plot`` extra) and imported only when a picture is drawn; the
computations (:mod:`symopt.plot.landscape`, :mod:`symopt.plot.train`) need NumPy only, so tests
check the data the pictures show rather than their pixels.
"""
