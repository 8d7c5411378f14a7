"""What the model sees, in concepts: discovered per class (after CRAFT, Fel et al., CVPR 2023),
named by the user and tested (TCAV, Kim et al., ICML 2018), and checked for shortcuts.

>>> found = actviz.concepts("xray.h5", "chest_xray/test", "pneumonia")        # doctest: +SKIP
>>> found.findings[0].words                                                    # doctest: +SKIP
>>> actviz.tcav("xray.h5", "chest_xray/test", "pneumonia", concept="markers/", random="random/").words  # doctest: +SKIP

Modules, one idea each: ``classes`` (the class, by number or name, its images, its score),
``crops`` (seeded crops of an image), ``layer`` (the default layer, its compiled passes in
fixed chunks), ``collect`` (the streaming pass, local and Ray, and partial results that merge),
``passes`` (what one batch becomes in each pass), ``factorise`` (NMF, how many concepts,
projection), ``importance`` (the class score's fall when a concept is removed, against random
parts), ``maps`` (concept maps, peaks and regions), ``shortcuts`` (findings in words),
``discover`` (concept discovery, the one call), ``tcav`` (concept activation vectors and their
test), ``result`` (``Concepts`` and ``Tcav``: pictures, words, files), ``pictures`` (sheets of
crops, maps, regions, charts).

Nothing here imports TensorFlow, scikit-learn or scipy until a computation needs them.
"""

from .discover import discover_concepts
from .result import Concept, Concepts, Tcav, TcavRun
from .shortcuts import Finding

# ``tcav`` the function is ``actviz.tcav`` (or ``actviz.concepts.tcav.tcav``): bound here, its
# name would hide the module ``actviz.concepts.tcav``.
__all__ = ["discover_concepts", "Concept", "Concepts", "Finding", "Tcav", "TcavRun"]
