"""From contribution values to token amounts: budget-balanced, non-negative, zero for harm.

Two rules, both integer-exact so anyone recomputes the same amounts (and Merkle root):

- ``proportional`` (``price=None``): the budget is split over the positive contribution values
  of all players; players that are not payees this round (an org whose older adapter is still
  in the model but that did not submit) keep their share in the pool.
- ``price`` (tokens per unit of value, e.g. per nat of validation-loss reduction): each payee
  earns ``price * value``; when that would exceed the budget every amount is scaled down by the
  same factor. A round that improves the model little then pays little, and the remainder goes
  back to the pool (Protocol v2's ``finalizeRound`` takes the tree's total).

A negative value (the model is better without the org) earns zero, never a debit: slashing is
governance's job, on evidence, not a by-product of a noisy evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SCALE = 10**12
"""Float values are turned into integers with this resolution before the integer split."""


def _units(value: float) -> int:
    return int(round(max(float(value), 0.0) * SCALE))


def allocate_rewards(
    budget: int,
    values: Mapping[str, float],
    *,
    payees: Iterable[str] | None = None,
    price: float | None = None,
) -> dict[str, int]:
    """Amount per payee (floored integers); ``sum <= budget``, every amount ``>= 0``."""
    if not isinstance(budget, int) or budget < 0:
        raise ValueError(f"reward budget must be an integer >= 0, got {budget!r}")
    if price is not None and not price >= 0:
        raise ValueError(f"price must be >= 0 tokens per unit of value, got {price!r}")
    paid = sorted(values if payees is None else set(payees))
    unknown = [p for p in paid if p not in values]
    if unknown:
        raise ValueError(f"payees {unknown} have no contribution value")
    units = {p: _units(v) for p, v in values.items()}
    if price is None:
        total = sum(units.values())
        if total == 0 or budget == 0:
            return {p: 0 for p in paid}
        return {p: budget * units[p] // total for p in paid}
    price_units = _units(price)
    raw = {p: units[p] * price_units for p in paid}  # token units * SCALE^2
    demand = sum(raw.values())
    cap = budget * SCALE * SCALE
    if demand <= cap:
        return {p: raw[p] // (SCALE * SCALE) for p in paid}
    return {p: budget * raw[p] // demand for p in paid}
