"""``python -m jaxgen.metrics [--data-dir DIR] [--out-dir DIR] [--force] [--quick]``: train and save the
MNIST classifier artefact (:func:`jaxgen.metrics.classifier.main`)."""
from jaxgen.metrics.classifier import main

raise SystemExit(main())
