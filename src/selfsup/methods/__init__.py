"""Self-supervised methods. Importing this package registers the built-in ones: every module in it is imported, and
a method registers itself with `@register_method` (a new method is one file here, no list to edit)."""
import importlib
import pkgutil

from .base import Method, OptimizerDefaults, ParameterRoles, StepInfo, TrainingContext, methods, register_method

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Method", "OptimizerDefaults", "ParameterRoles", "StepInfo", "TrainingContext", "methods",
           "register_method"]
