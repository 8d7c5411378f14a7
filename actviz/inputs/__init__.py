"""Reading inputs: images from files, bytes or arrays, made into what a model takes.

``images`` (one image file read safely, resized as the model takes it), ``preprocessing`` (pixel
scaling and choosing it), ``samples`` (the sample images offered with a model), ``batch`` (images
in any form made into one batch: the one path from an image to a model input).
"""
