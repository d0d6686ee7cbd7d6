"""One exception tree: every exception the service defines lives in core/errors.py, under
ReconcilerError, and says whether it is retried."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import exporters
import reconciler
import webhooks
from reconciler.core import errors
from reconciler.core.errors import ReconcilerError, retry_delay


def modules() -> list[str]:
    names = []
    for pkg in (reconciler, webhooks, exporters):
        names.append(pkg.__name__)
        for info in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}."):
            # Alembic's env.py and revisions are scripts Alembic runs, not modules to import.
            if not info.name.endswith("__main__") and ".migrations" not in info.name:
                names.append(info.name)
    return names


def test_every_exception_class_is_defined_in_the_tree() -> None:
    outside = []
    for name in modules():
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == name:
                outside.append(f"{name}.{cls_name}")
    assert sorted(outside) == sorted(f"reconciler.core.errors.{n}" for n in tree())


def tree() -> list[str]:
    return [
        n
        for n, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, BaseException) and c.__module__ == errors.__name__
    ]


@pytest.mark.parametrize("name", tree())
def test_each_type_is_a_reconciler_error_drawn_in_the_module_docstring(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, ReconcilerError)
    assert f" {name} " in (errors.__doc__ or "")


def test_retryable_types_name_their_first_delay() -> None:
    for name in tree():
        cls = getattr(errors, name)
        if cls.retryable:
            assert cls.retry_after and cls.retry_after > 0, name
    assert retry_delay(errors.ConfigError("x", "y")) is None
    assert retry_delay(errors.SpecError("f", 1, "x", "y")) is None
    assert retry_delay(errors.HealthTimeout("x")) is None
