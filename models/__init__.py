"""Model registry: ``--model NAME`` loads ``models/NAME_model.py`` and its ``<Name>Model`` class."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, List

from models.base_model import BaseModel
from util.logger import get_logger

log = get_logger(__name__)


def list_models() -> List[str]:
    """Names accepted by ``--model`` (one ``<name>_model.py`` file each)."""
    here = Path(__file__).parent
    return sorted(p.name[: -len("_model.py")] for p in here.glob("*_model.py") if p.name != "base_model.py")


def find_model_using_name(model_name: str) -> type:
    """Return the class ``<Name>Model`` (case and underscores ignored) from ``models/<name>_model.py``."""
    if model_name not in list_models():
        raise ValueError(f"unknown model '{model_name}' (--model); valid: {', '.join(list_models())}")
    module = importlib.import_module(f"models.{model_name}_model")
    target = model_name.replace("_", "") + "model"
    for name, cls in vars(module).items():
        if name.lower() == target and isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls
    raise ValueError(f"models/{model_name}_model.py must define a subclass of BaseModel named like "
                     f"'{target}' (case-insensitive)")


def get_option_setter(model_name: str) -> Callable[..., Any]:
    """Return the model class's static ``modify_commandline_options``."""
    return find_model_using_name(model_name).modify_commandline_options


def create_model(opt: Any) -> Any:
    """Instantiate the model named by ``opt.model``."""
    instance = find_model_using_name(opt.model)(opt)
    log.info("model [%s] was created", type(instance).__name__)
    return instance
