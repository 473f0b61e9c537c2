"""Attribute-control accuracy: does the attribute classifier find the requested value in generated faces?

As in StarGAN/STGAN: for each conditioned attribute, faces are generated with it requested on or off (the
other attributes as in real rows), and the share where the classifier agrees with the request is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from facegen.data.annotations import set_attribute
from facegen.metrics.attribute_classifier import AttributeClassifier


@dataclass
class ControlResult:
    accuracy: dict[str, float]  # per attribute: share of faces where the classifier sees the requested value
    targets: list[np.ndarray]  # per attribute: the N x A requests
    images: list[np.ndarray]  # per attribute: the N x R x R x 3 faces made for them


def requests(base_rows: np.ndarray, attributes: Sequence[str], attribute: int, flip: bool) -> np.ndarray:
    """Copies of ``base_rows`` (N x A 0/1, columns named by ``attributes``) with column ``attribute`` flipped
    (edits) or alternately on/off (samples). Where it is turned on, the attributes it excludes (the other hair
    colours) are turned off: the request must be one a face can meet."""
    targets = np.array(base_rows, dtype=np.float32)
    set_attribute(
        targets,
        attributes,
        attributes[attribute],
        1 - targets[:, attribute] if flip else np.arange(len(targets)) % 2 == 0,
    )
    return targets


def attribute_control(
    classifier: AttributeClassifier,
    attributes: Sequence[str],
    base_rows: np.ndarray,
    make: Callable[[np.ndarray], np.ndarray],
    flip: bool,
) -> ControlResult:
    """For each of the generator's ``attributes``: ``make(requests)`` -> faces, scored by ``classifier``.

    ``make`` is e.g. ``lambda t: model.sample(torch.from_numpy(t), seed)`` or
    ``lambda t: model.edit(sources, torch.from_numpy(t))``.
    """
    targets = [requests(base_rows, attributes, a, flip) for a in range(len(attributes))]
    return control_of_requests(classifier, attributes, targets, make)


def control_of_requests(
    classifier: AttributeClassifier,
    attributes: Sequence[str],
    targets: Sequence[np.ndarray],
    make: Callable[[np.ndarray], np.ndarray],
) -> ControlResult:
    """:func:`attribute_control` of given requests (per attribute, N x A: e.g. another result's ``targets``, to
    score a second way of making faces on the very same requests)."""
    check_judged(classifier, attributes)
    result = ControlResult({}, [], [])
    for a, (name, wanted) in enumerate(zip(attributes, targets, strict=True)):
        images = make(wanted)
        seen = classifier.predict_proba(images)[:, classifier.attributes.index(name)] > 0.5
        result.accuracy[name] = round(float((seen == (wanted[:, a] > 0.5)).mean()), 4)
        result.targets.append(wanted)
        result.images.append(images)
    return result


def check_judged(classifier: AttributeClassifier, attributes: Sequence[str]) -> None:
    """Refuse attributes the classifier was not trained on, naming them and the ones it knows."""
    missing = [name for name in attributes if name not in classifier.attributes]
    if missing:
        raise ValueError(
            f"the attribute classifier was not trained on {missing}; it knows {list(classifier.attributes)}"
        )
