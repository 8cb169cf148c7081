"""Energy credits: minted per kWh of metered green energy delivered, transferable, redeemable.

Every mint, transfer and redemption is a journal entry (kind, data) that the market run writes
to the ledger. Accounts are participant numbers; ``COMMUNITY`` is the community pool.
Conservation holds by construction and is checked: minted = held + redeemed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COMMUNITY = -1


@dataclass
class CreditBank:
    """Balances of energy credits (1 credit per ``credits_per_kwh`` kWh) per account."""

    credit_value_eur: float
    balances: dict[int, float] = field(default_factory=dict)
    minted: float = 0.0
    redeemed: float = 0.0
    journal: list[tuple[str, dict]] = field(default_factory=list)

    def mint(self, account: int, credits: float, reason: str, step: int | None = None) -> None:
        _positive("credits", credits)
        self.balances[account] = self.balances.get(account, 0.0) + credits
        self.minted += credits
        self.journal.append(
            ("credit_mint", {"to": account, "credits": credits, "reason": reason, "step": step})
        )

    def mint_many(
        self, accounts: np.ndarray, credits: np.ndarray, reason: str, steps: np.ndarray
    ) -> None:
        """Mint for many (account, step) rows at once; zero rows are skipped."""
        for a, c, s in zip(accounts, credits, steps, strict=True):
            if c > 0:
                self.mint(int(a), float(c), reason, int(s))

    def transfer(self, src: int, dst: int, credits: float) -> None:
        _positive("credits", credits)
        if src == dst:
            msg = f"transfer: source and destination are both account {src}"
            raise ValueError(msg)
        have = self.balances.get(src, 0.0)
        if credits > have + 1e-12:
            msg = f"transfer: account {src} holds {have:.6g} credits, cannot send {credits:.6g}"
            raise ValueError(msg)
        self.balances[src] = have - credits
        self.balances[dst] = self.balances.get(dst, 0.0) + credits
        self.journal.append(("credit_transfer", {"from": src, "to": dst, "credits": credits}))

    def redeem(self, account: int, credits: float) -> float:
        """Burn credits for money at the configured rate; returns EUR paid out."""
        _positive("credits", credits)
        have = self.balances.get(account, 0.0)
        if credits > have + 1e-12:
            msg = f"redeem: account {account} holds {have:.6g} credits, cannot redeem {credits:.6g}"
            raise ValueError(msg)
        self.balances[account] = have - credits
        self.redeemed += credits
        eur = credits * self.credit_value_eur
        self.journal.append(("credit_redeem", {"from": account, "credits": credits, "eur": eur}))
        return eur

    @property
    def held(self) -> float:
        return float(sum(self.balances.values()))

    def check_conservation(self, tol: float = 1e-9) -> None:
        if abs(self.minted - self.held - self.redeemed) > tol * max(1.0, self.minted):
            msg = f"credits not conserved: minted {self.minted} != held {self.held} + redeemed {self.redeemed}"
            raise AssertionError(msg)


def _positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        msg = f"{name} = {value!r}: expected a finite amount > 0"
        raise ValueError(msg)


def green_delivered_kwh(sold_kwh: np.ndarray, metered_kwh: np.ndarray) -> np.ndarray:
    """Sold energy the meter confirms went out: min(sold, metered export), per (step, participant).

    All energy sold on this market comes from rooftop PV, directly or through a battery that
    charged from PV surplus, so delivered energy counts as green.
    """
    return np.minimum(sold_kwh, np.maximum(-metered_kwh, 0))


def shifted_into_green_kwh(
    battery_bought_kwh: np.ndarray, carbon: np.ndarray, quantile: float
) -> np.ndarray:
    """Load moved into low-carbon (high-renewable) intervals: battery purchases there."""
    threshold = np.quantile(carbon, quantile)
    return battery_bought_kwh * (carbon <= threshold)[:, None]
