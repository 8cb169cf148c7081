"""Make-whole refunds: by hand, including a pot too small to cover every loss."""

import numpy as np
import pytest

from gridsync.market.settlement import Settlement, make_whole


def bills(bill_eur, fees_eur):
    z = np.zeros(len(bill_eur))
    return Settlement(
        market_eur=np.asarray(bill_eur, float) - np.asarray(fees_eur, float),
        network_fee_eur=np.asarray(fees_eur, float),
        retail_import_eur=z,
        retail_export_eur=z,
        imbalance_eur=z,
        storage_credit_eur=z,
        shortfall_kwh=z,
        spill_kwh=z,
        metered_import_kwh=z,
        metered_export_kwh=z,
    )


def test_losses_refunded_in_full_when_fees_cover_them():
    market = make_whole(bills([10.0, 5.0, 8.0], [1.0, 1.0, 1.0]), bills([9.5, 6.0, 7.0], [0, 0, 0]))
    # losses 0.5 and 1.0 (participants 0 and 2), pot 3.0
    assert market.make_whole_eur == pytest.approx([0.5, 0.0, 1.0])
    assert market.bill_eur == pytest.approx([9.5, 5.0, 7.0])


def test_short_pot_is_shared_pro_rata_and_never_exceeded():
    market = make_whole(bills([10.0, 8.0], [0.3, 0.0]), bills([9.0, 7.0], [0, 0]))
    # losses 1.0 and 1.0, pot 0.3 -> 0.15 each
    assert market.make_whole_eur == pytest.approx([0.15, 0.15])
    assert market.make_whole_eur.sum() == pytest.approx(0.3)
