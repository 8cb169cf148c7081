"""Every registered controller builds, and every one has a shielded variant."""

import pytest

from gridsync.sim.registry import CONTROLLERS, make_controller


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_registered_controllers_build(name):
    controller = make_controller(name)
    assert callable(controller.act) and callable(controller.reset)
    if name.endswith("+shield"):
        assert controller.name == name or controller.name.endswith("+shield")
        assert f"{name.removesuffix('+shield')}" in CONTROLLERS


def test_unknown_controller_lists_choices():
    with pytest.raises(ValueError, match="choose from .*mpc"):
        make_controller("nope")
