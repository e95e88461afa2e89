"""LLM token price book: per-model prices and a markup, each with an effective-from time.

The price that applies to an event is the one in force at the event's own time, not at the time
it is processed: a late event stamped before a price change is billed at the old price, and a
change applies from its effective time even to events that arrive afterwards.

Token semantics are TokenEvent's (schemas/avro/TokenEvent.avsc): ``input_tokens`` counts ALL input
tokens, cached and cache-written ones included, and ``output_tokens`` all output, reasoning
included. So::

    cost = ((input - cached - cache_write) × input price + cached × cached-input price
            + cache_write × cache-write price + output × output price) / 1,000,000
    billed = cost × (1 + markup)

A model price without a cache-write price charges cache writes at its input price (what
providers that do not bill cache writes separately do).

``cost`` is exact: tokens × price-per-million / 1,000,000 only shifts the decimal exponent, and
``billed = cost × (1 + markup)`` is an exact product. With prices of p decimal places and a
markup of m decimal places, cost has at most p + 6 and billed at most p + 6 + m decimal places;
any rounding to storage or currency scale is the caller's written rule, not done here.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from meterline.metering.decimals import EXACT, ONE, ZERO, DecimalValueError, to_decimal
from meterline.metering.windows import format_instant, parse_instant_ms

_PRICE_FIELDS = ("input_per_million", "output_per_million", "cached_input_per_million")


class PricingError(ValueError):
    """A token event that cannot be priced; the caller sends it to the DLQ with this message."""


class UnknownModelError(PricingError, LookupError):
    """No price for the model in force at the event's time."""


class PriceBookError(ValueError):
    """A malformed price or markup definition."""


def _amount(raw: Any, what: str) -> Decimal:
    try:
        value = to_decimal(raw, what)
    except DecimalValueError as exc:
        raise PriceBookError(str(exc)) from None
    if value < 0:
        raise PriceBookError(f"{what} {raw!r} is negative")
    return value


def _instant(raw: Any, what: str) -> int:
    try:
        return parse_instant_ms(raw, what)
    except ValueError as exc:
        raise PriceBookError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Price of one model, per million tokens, from ``effective_from`` (epoch ms) on: one
    price per token type. ``input_per_million`` applies to input tokens neither read from nor
    written to cache; ``cache_write_per_million`` None means the input price.
    """

    model: str
    provider: str
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal
    effective_from: int
    cache_write_per_million: Decimal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise PriceBookError(f"model name must be a non-empty string, got {self.model!r}")
        if not isinstance(self.provider, str):
            raise PriceBookError(f"model {self.model!r}: provider must be a string")
        for name in _PRICE_FIELDS:
            object.__setattr__(
                self, name, _amount(getattr(self, name), f"model {self.model!r} {name}")
            )
        if self.cache_write_per_million is not None:
            what = f"model {self.model!r} cache_write_per_million"
            object.__setattr__(
                self, "cache_write_per_million", _amount(self.cache_write_per_million, what)
            )
        object.__setattr__(
            self,
            "effective_from",
            _instant(self.effective_from, f"model {self.model!r} effective_from"),
        )

    @property
    def cache_write_price(self) -> Decimal:
        """The cache-write price in force: the input price when none is given."""
        cw = self.cache_write_per_million
        return self.input_per_million if cw is None else cw

    def to_dict(self) -> dict[str, Any]:
        cw = self.cache_write_per_million
        return {
            "model": self.model,
            "provider": self.provider,
            "input_per_million": str(self.input_per_million),
            "output_per_million": str(self.output_per_million),
            "cached_input_per_million": str(self.cached_input_per_million),
            "cache_write_per_million": None if cw is None else str(cw),
            "effective_from": self.effective_from,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelPrice:
        missing = [k for k in ("model", *_PRICE_FIELDS, "effective_from") if k not in data]
        if missing:
            raise PriceBookError(f"model price {data.get('model')!r} lacks {', '.join(missing)}")
        return cls(
            data["model"],
            data.get("provider", ""),
            data["input_per_million"],
            data["output_per_million"],
            data["cached_input_per_million"],
            data["effective_from"],
            data.get("cache_write_per_million"),
        )


@dataclass(frozen=True, slots=True)
class Markup:
    """Markup rate over the underlying cost (0.2 = +20 %) from ``effective_from`` on."""

    rate: Decimal
    effective_from: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _amount(self.rate, "markup rate"))
        object.__setattr__(
            self, "effective_from", _instant(self.effective_from, "markup effective_from")
        )

    def to_dict(self) -> dict[str, Any]:
        return {"rate": str(self.rate), "effective_from": self.effective_from}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Markup:
        if "rate" not in data or "effective_from" not in data:
            raise PriceBookError(f"markup needs rate and effective_from: {dict(data)!r}")
        return cls(data["rate"], data["effective_from"])


class TokenCost(NamedTuple):
    cost: Decimal  # underlying provider cost
    markup_rate: Decimal  # the markup in force at the event time (0 when none)
    billed: Decimal  # cost × (1 + markup_rate)


def _tokens(raw: Any, what: str) -> int:
    if type(raw) is not int or raw < 0:
        raise PricingError(f"{what} must be a non-negative integer, got {raw!r}")
    return raw


class PriceBook:
    """Model prices and markups, each a timeline ordered by effective_from."""

    __slots__ = ("_markup_froms", "_markups", "_price_froms", "_prices")

    def __init__(self, prices: Iterable[ModelPrice] = (), markups: Iterable[Markup] = ()) -> None:
        # Parallel lists so the per-event lookup is one bisect over plain ints.
        self._price_froms: dict[str, list[int]] = {}
        self._prices: dict[str, list[ModelPrice]] = {}
        self._markup_froms: list[int] = []
        self._markups: list[Markup] = []
        for price in prices:
            self.add_price(price)
        for markup in markups:
            self.add_markup(markup)

    def add_price(self, price: ModelPrice) -> None:
        """Add a price; one with the same model and effective_from replaces it, so replaying
        catalog changes is idempotent."""
        froms = self._price_froms.setdefault(price.model, [])
        prices = self._prices.setdefault(price.model, [])
        i = bisect_right(froms, price.effective_from)
        if i and froms[i - 1] == price.effective_from:
            prices[i - 1] = price
        else:
            froms.insert(i, price.effective_from)
            prices.insert(i, price)

    def add_markup(self, markup: Markup) -> None:
        froms = self._markup_froms
        i = bisect_right(froms, markup.effective_from)
        if i and froms[i - 1] == markup.effective_from:
            self._markups[i - 1] = markup
        else:
            insort(froms, markup.effective_from)
            self._markups.insert(i, markup)

    def price_at(self, model: str, ts_ms: int) -> ModelPrice | None:
        froms = self._price_froms.get(model)
        if not froms:
            return None
        i = bisect_right(froms, ts_ms)
        return self._prices[model][i - 1] if i else None

    def markup_at(self, ts_ms: int) -> Decimal:
        i = bisect_right(self._markup_froms, ts_ms)
        return self._markups[i - 1].rate if i else ZERO

    def models(self) -> list[str]:
        return sorted(self._prices)

    def prices(self, model: str) -> list[ModelPrice]:
        return list(self._prices.get(model, ()))

    def markups(self) -> list[Markup]:
        return list(self._markups)

    def cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int,
        ts_ms: int,
        cache_write_tokens: int = 0,
    ) -> TokenCost:
        """Cost of one request in TokenEvent semantics: cached and cache-write tokens are
        parts of ``input_tokens`` (reasoning tokens are part of output and need no price)."""
        price = self.price_at(model, ts_ms)
        if price is None:
            froms = self._price_froms.get(model)
            if not froms:
                raise UnknownModelError(f"model {model!r} has no price in the price book")
            raise UnknownModelError(
                f"model {model!r} has no price in force at {format_instant(ts_ms)} "
                f"(its first price is effective from {format_instant(froms[0])})"
            )
        inp = _tokens(input_tokens, "input_tokens")
        cached = _tokens(cached_input_tokens, "cached_input_tokens")
        written = _tokens(cache_write_tokens, "cache_write_tokens")
        uncached = inp - cached - written
        if uncached < 0:
            raise PricingError(
                f"cached_input_tokens ({cached}) + cache_write_tokens ({written}) exceed "
                f"input_tokens ({inp})"
            )
        mul = EXACT.multiply
        add = EXACT.add
        total = add(
            add(
                mul(price.input_per_million, uncached),
                mul(price.output_per_million, _tokens(output_tokens, "output_tokens")),
            ),
            add(
                mul(price.cached_input_per_million, cached),
                mul(price.cache_write_price, written),
            ),
        )
        # Per million → per token is an exponent shift: exact, unlike a division.
        cost = total.scaleb(-6, EXACT)
        rate = self.markup_at(ts_ms)
        billed = mul(cost, add(ONE, rate)) if rate else cost
        return TokenCost(cost, rate, billed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prices": [p.to_dict() for m in sorted(self._prices) for p in self._prices[m]],
            "markups": [m.to_dict() for m in self._markups],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceBook:
        return cls(
            (ModelPrice.from_dict(p) for p in data.get("prices", ())),
            (Markup.from_dict(m) for m in data.get("markups", ())),
        )
