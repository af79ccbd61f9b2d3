"""Which models the fleet can run: each worker that takes chunks announces, with its slots,
the models present and verified in its model directory or mirror folders; a submission
whose models no such worker has is refused at once, rather than failing on every worker."""

from __future__ import annotations

from collections.abc import Mapping

from facefleet.config.errors import ModelsMissing


def check_fleet_models(needed: list[str], workers: Mapping[str, frozenset[str] | None]) -> None:
    """Raise ModelsMissing when no worker in ``workers`` (node -> its models; None: it did not
    say) has every model in ``needed``. No worker at all, or one that did not say, passes:
    the task waits for workers, as before workers reported their models."""
    if not needed or not workers:
        return
    if any(models is None or models.issuperset(needed) for models in workers.values()):
        return
    known = [models for models in workers.values() if models is not None]
    anywhere = frozenset().union(*known)
    missing = [name for name in needed if name not in anywhere]
    if missing:  # else each is on some worker, but no worker has them all
        where = "no worker that takes chunks now has"
    else:
        closest = max(known, key=lambda models: len(models.intersection(needed)))
        missing = [name for name in needed if name not in closest]
        where = (
            "no single worker that takes chunks now has all of this task's models; missing beside the others:"
        )
    names = ", ".join(missing)
    commands = "; ".join(f"`facefleet models download {name}`" for name in missing)
    raise ModelsMissing(
        f"{where} {names} (the task needs {', '.join(needed)}): run {commands} on the workers "
        "(or put the files in their FACEFLEET_MODEL_DIR or a mirror folder); they report it within a minute",
        missing,
    )
