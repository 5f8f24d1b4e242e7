"""Which method trains on which modality, read from their declarations (nothing is built or tried)."""
from __future__ import annotations

from .methods import Method, methods
from .modalities import encoder_kinds, get_modality, modalities
from .modalities.base import Modality


def trains_on(method: type[Method], modality: Modality) -> bool:
    """True when the modality makes the views the method requests and one of its encoders implements the method's
    protocol."""
    return (method.requested_views.recipe in modality.view_recipes
            and any(issubclass(kind, method.encoder_kind) for kind in encoder_kinds(modality).values()))


def supported_pairs() -> list[tuple[str, str]]:
    """(method, modality) for every registered method and every registered modality it trains on."""
    return [(m, d) for d in modalities.names() for m in methods.names() if trains_on(methods.get(m), get_modality(d))]


def modalities_for(method_name: str) -> list[str]:
    """The registered modalities a method trains on."""
    return [d for m, d in supported_pairs() if m == method_name]
