"""Hardware-in-the-loop on loopback: the twin's devices behind real OCPP and Modbus stacks.

    twin -> simulated devices -> protocols -> GridSync -> setpoints -> protocols -> devices -> twin

:class:`DeviceBridge` starts GridSync's CSMS and SunSpec clients and one simulated device per
asset of the twin's (true) fleet: an OCPP charge point per EV charger, a SunSpec inverter per
PV system and per battery, each on its own loopback socket. Every step:

* :meth:`DeviceBridge.sense` (twin -> devices -> GridSync): chargers open/close transactions
  as cars arrive and leave and send their meter register; inverters take the metered PV output,
  battery power and state of charge into their registers and GridSync polls them. Readings go
  into the ingestion path when ``ingest`` is given. The controller's observation is then
  rebuilt from what came over the wire: which session is plugged in (transaction id token),
  the energy each session has received (meter register difference) and each battery's energy
  (SunSpec ``802.SoC`` x the datasheet capacity). Load, PV and grid telemetry keep coming
  from the twin's meter path.
* :meth:`DeviceBridge.actuate` (GridSync -> devices -> twin): EV setpoints become TxProfiles,
  battery setpoints ``124`` writes, PV curtailment an active-power limit (``123.WMaxLimPct``:
  the PV available in the last measured interval minus the curtailment, the only estimate
  GridSync has; 100 % when nothing is curtailed), each write read back. The twin then runs
  what the devices run: each charger's limit in force, each battery's register setpoint, and
  the PV output the limit lets through given the sun the inverter actually sees. Appliances
  and heat pumps have no protocol here and pass through unchanged.

:class:`ProtocolController` puts the bridge around any controller for
:func:`gridsync.sim.simulator.simulate` (the batch KPIs through the protocol loop);
:class:`ProtocolTwin` puts it around the console's twin (``gridsync serve --devices``). Both
call the bridge from the worker thread that steps the twin, on the event loop that owns the
sockets.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gridsync.devices.audit import AuditTrail
from gridsync.devices.modbus_client import ModbusFleet, SunSpecClient
from gridsync.devices.modbus_sim import SimInverter
from gridsync.devices.ocpp_csms import Alert, Csms
from gridsync.devices.ocpp_sim import SimCharger
from gridsync.devices.telemetry import Ingest, ReadingSink
from gridsync.sim.controller import Observation, Setpoints

PROTOCOLS = ("ocpp", "modbus")
#: EnWG §14a: a dimmed charger keeps at least 4.2 kW; the default profile the CSMS installs
FALLBACK_KW = 4.2


def ev_schedule(
    kw_now: float, plan: Any, step: int, i: int, dt_s: float, n_periods: int, v2g: bool
) -> list[tuple[float, float]]:
    """Charger ``i``'s TxProfile periods ``[(offset s, kW), ...]``: the setpoint for this
    step, then the plan's following steps as long as it covers them (up to ``n_periods`` in
    all), so a charger that stops hearing from GridSync keeps following the plan; discharge
    only where the charger is V2G."""
    kws = [kw_now]
    if plan is not None:
        for k in range(1, n_periods):
            if not plan.covers(step + k):
                break
            kws.append(float(plan.ev_kw[step + k - plan.step][i]))
    return [(round(k * dt_s), kw if v2g else max(kw, 0.0)) for k, kw in enumerate(kws)]


def parse_protocols(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"ocpp,modbus"`` -> ``("ocpp", "modbus")``; ValueError naming a wrong entry."""
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    bad = [t for t in items if t not in PROTOCOLS]
    if bad or not items:
        msg = f"devices: {bad[0] if bad else text!r} is not a device protocol; expected a comma-separated subset of {', '.join(PROTOCOLS)}"
        raise ValueError(msg)
    return tuple(dict.fromkeys(items))


@dataclass
class BridgeStats:
    """What crossed the wire (latencies in s from sending a command to the device's answer)."""

    steps: int = 0
    profile_latency_s: list[float] = field(default_factory=list)
    profiles_accepted: int = 0
    profiles_failed: int = 0
    modbus_latency_s: list[float] = field(default_factory=list)
    modbus_writes: int = 0
    readback_differs: int = 0
    write_errors: int = 0

    def summary(self) -> dict[str, Any]:
        def q(xs: list[float], p: float) -> float | None:
            return float(np.quantile(xs, p)) if xs else None

        return {
            "steps": self.steps,
            "profiles_accepted": self.profiles_accepted,
            "profiles_failed": self.profiles_failed,
            "profile_ack_p50_s": q(self.profile_latency_s, 0.5),
            "profile_ack_p99_s": q(self.profile_latency_s, 0.99),
            "modbus_writes": self.modbus_writes,
            "modbus_write_p99_s": q(self.modbus_latency_s, 0.99),
            "readback_differs": self.readback_differs,
            "write_errors": self.write_errors,
        }


class DeviceBridge:
    """Simulated devices for ``scenario``'s fleet and GridSync's protocol side, on loopback."""

    def __init__(
        self,
        scenario,
        protocols: str | Sequence[str] = PROTOCOLS,
        *,
        ingest: Ingest | None = None,
        alert: Alert | None = None,
        store: Any = None,
        ocpp_version: str = "2.0.1",
        fallback_kw: float = FALLBACK_KW,
        host: str = "127.0.0.1",
        plan_periods: int = 4,
    ) -> None:
        self.scenario, self.protocols = scenario, parse_protocols(protocols)
        self.host, self.ocpp_version, self.plan_periods = host, ocpp_version, plan_periods
        plant = scenario.plant
        self.true_fleet = scenario.fleet if plant is None else plant.fleet
        self.audit = AuditTrail(store, actor="devices")
        self.alert = alert
        self.stats = BridgeStats()
        ev = self.true_fleet.ev
        self.cp_ids = [f"cp-{i:04d}" for i in range(len(ev))]
        self._keys = {cp: secrets.token_hex(16) for cp in self.cp_ids}
        self.csms = Csms(
            host=host,
            credentials=self._keys,
            default_limit_kw={
                cp: float(min(fallback_kw, ev.max_power_kw[i])) for i, cp in enumerate(self.cp_ids)
            },
            sink=ReadingSink(ingest, origin="ocpp"),
            audit=self.audit,
            alert=alert,
        )
        self.chargers: list[SimCharger] = []
        self.batteries: list[SimInverter] = []
        self.pv: list[SimInverter] = []
        self.modbus = ModbusFleet({}, ReadingSink(ingest, origin="modbus"))
        n_ev, n_bat, n_pv = len(ev), len(self.true_fleet.battery), len(self.true_fleet.pv)
        self._plugged = np.full(n_ev, -1)
        self._register_kwh = np.zeros(n_ev)
        self._base_kwh = np.zeros(n_ev)
        self._bat_kw = np.zeros(n_bat)
        self._bat_written = np.full(n_bat, np.nan)
        self._pv_pct_written = np.full(n_pv, np.nan)

    def describe(self) -> str:
        """One line for the operator: what runs where."""
        parts = []
        if self.ocpp_on:
            parts.append(
                f"{len(self.chargers)} OCPP {self.ocpp_version} chargers -> CSMS {self.csms.url}"
            )
        if self.modbus_on:
            parts.append(
                f"{len(self.batteries)} battery + {len(self.pv)} PV SunSpec inverters (Modbus TCP "
                f"on {self.host}, ports {min((d.port for d in self.batteries + self.pv), default=0)}...)"
            )
        return "; ".join(parts) or "none"

    @property
    def ocpp_on(self) -> bool:
        return "ocpp" in self.protocols

    @property
    def modbus_on(self) -> bool:
        return "modbus" in self.protocols

    # life cycle ---------------------------------------------------------------------------
    async def start(self, timeout_s: float = 60.0) -> None:
        f = self.true_fleet
        if self.ocpp_on:
            await self.csms.start()
            self.chargers = [
                SimCharger(
                    cp,
                    self.csms.url,
                    self._keys[cp],
                    self.ocpp_version,
                    float(f.ev.max_power_kw[i]),
                    bool(f.ev.v2g[i]),
                )
                for i, cp in enumerate(self.cp_ids)
            ]
            for ch in self.chargers:
                await ch.start()
            await self._until(
                lambda: (
                    len(self.csms.online()) == len(self.chargers)
                    and all(ch.connected.is_set() for ch in self.chargers)
                ),
                timeout_s,
            )
        if self.modbus_on:
            b = f.battery
            self.batteries = [
                SimInverter(f"bat-{j:04d}", 0.0, float(b.capacity_kwh[j]), float(b.power_kw[j]))
                for j in range(len(b))
            ]
            self.pv = [SimInverter(f"pv-{k:04d}", float(f.pv.peak_kw[k])) for k in range(len(f.pv))]
            devices = self.batteries + self.pv
            await asyncio.gather(*(d.start() for d in devices))
            self.modbus.clients = {
                d.name: SunSpecClient(d.name, self.host, d.port, audit=self.audit, alert=self.alert)
                for d in devices
            }
            await self.modbus.connect()

    @staticmethod
    async def _until(cond: Callable[[], bool], timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > end:
                msg = f"devices did not come up within {timeout_s:g} s"
                raise TimeoutError(msg)
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for ch in self.chargers:
            await ch.stop()
        if self.ocpp_on:
            await self.csms.stop()
        self.modbus.close()
        await asyncio.gather(*(d.stop() for d in self.batteries + self.pv))
        await self.audit.flush()

    # twin -> devices -> GridSync ----------------------------------------------------------
    async def _sense_charger(self, i: int, k: int, delivered: np.ndarray, dt_h: float) -> None:
        ch, prev = self.chargers[i], int(self._plugged[i])
        if prev >= 0 and prev != k:  # the car left: close its transaction on its final register
            ch.energy_kwh = self._base_kwh[i] + float(delivered[prev])
            ch.power_kw = 0.0
            await ch.unplug()
            self._base_kwh[i], self._plugged[i] = ch.energy_kwh, -1
        if k >= 0 and prev != k:
            ch.energy_kwh = self._base_kwh[i] + float(delivered[k])
            await ch.plug_in(id_token=f"ev-{k}")
            self._plugged[i] = k
        register = self._base_kwh[i] + float(delivered[k]) if k >= 0 else ch.energy_kwh
        ch.power_kw = (register - self._register_kwh[i]) / dt_h  # mean power of the interval
        ch.energy_kwh = self._register_kwh[i] = register
        await ch.send_meter_values()

    async def sense(self, obs: Observation) -> Observation:
        """Push the twin's device states through the protocols; the observation as GridSync
        reads it back (see the module docstring)."""
        out: dict[str, Any] = {}
        if self.ocpp_on:
            active = np.asarray(obs.ev_active_session, int)
            await asyncio.gather(
                *(
                    self._sense_charger(i, int(active[i]), obs.ev_delivered_kwh, obs.dt_h)
                    for i in range(len(self.chargers))
                )
            )
            seen = np.full(len(self.chargers), -1)
            delivered = np.asarray(obs.ev_delivered_kwh, float).copy()
            for i, cp in enumerate(self.cp_ids):
                sess = self.csms.chargers[cp].session
                if sess is not None and sess.id_token.startswith("ev-"):
                    k = int(sess.id_token[3:])
                    seen[i], delivered[k] = k, sess.delivered_kwh
            out["ev_active_session"], out["ev_delivered_kwh"] = seen, delivered
        if self.modbus_on:
            tel, model_cap = obs.telemetry, self.scenario.fleet.battery.capacity_kwh
            vm = tel.vm_pu
            b, pv = self.true_fleet.battery, self.true_fleet.pv
            for j, inv in enumerate(self.batteries):
                v = 1.0 if vm is None else float(vm[b.bus[j]])
                soc = float(obs.battery_energy_kwh[j] / model_cap[j])
                inv.measure(0.0, float(self._bat_kw[j]), min(max(soc, 0.0), 1.0), v)
            for k, inv in enumerate(self.pv):
                v = 1.0 if vm is None else float(vm[pv.bus[k]])
                inv.measure(float(tel.pv_kw[k]), 0.0, None, v)
            await self.modbus.poll_all()
            energy = np.asarray(obs.battery_energy_kwh, float).copy()
            for j, inv in enumerate(self.batteries):
                soc = self.modbus.latest.get(inv.name, {}).get("soc")
                if soc is not None:
                    energy[j] = soc / 100.0 * model_cap[j]
            out["battery_energy_kwh"] = energy
        return replace(obs, **out)

    # GridSync -> devices -> twin ----------------------------------------------------------
    async def _write_batteries(self, sp: Setpoints) -> None:
        jobs = []
        for j, inv in enumerate(self.batteries):
            kw = float(sp.battery_kw[j])
            if kw != self._bat_written[j]:  # unchanged setpoints stay as verified last time
                jobs.append(self.modbus.clients[inv.name].set_battery_kw(kw))
                self._bat_written[j] = kw
        self._count(await asyncio.gather(*jobs))

    async def _write_pv(self, obs: Observation, sp: Setpoints) -> None:
        jobs = []
        est = obs.telemetry.pv_available_kw
        for k, inv in enumerate(self.pv):
            curtail = float(sp.pv_curtail_kw[k])
            pct = 100.0
            if curtail > 1e-9:
                pct = 100.0 * max(float(est[k]) - curtail, 0.0) / inv.rated_kw
            pct = round(min(pct, 100.0), 2)
            if pct != self._pv_pct_written[k]:
                jobs.append(self.modbus.clients[inv.name].set_pv_limit_pct(pct))
                self._pv_pct_written[k] = pct
        self._count(await asyncio.gather(*jobs))

    def _count(self, results) -> None:
        for r in results:
            self.stats.modbus_writes += 1
            self.stats.modbus_latency_s.append(r.latency_s)
            self.stats.readback_differs += r.status == "readback_differs"
            self.stats.write_errors += r.status == "error"

    async def actuate(
        self, obs: Observation, sp: Setpoints, pv_true_kw: np.ndarray, plan: Any = None
    ) -> Setpoints:
        """Send ``sp`` through the protocols (EV profiles continue with ``plan``'s next
        steps when the controller published one); the setpoints the devices then run."""
        self.stats.steps += 1
        out: dict[str, np.ndarray] = {}
        if self.ocpp_on:
            ev = self.true_fleet.ev
            dt_s = obs.dt_h * 3600.0
            schedules = {
                self.cp_ids[i]: ev_schedule(
                    float(sp.ev_kw[i]), plan, obs.step, i, dt_s, self.plan_periods, ev.v2g[i]
                )
                for i in np.flatnonzero(self._plugged >= 0)
            }
            for r in await self.csms.set_schedules(schedules, time.time()):
                self.stats.profile_latency_s.append(r.latency_s)
                self.stats.profiles_accepted += r.accepted
                self.stats.profiles_failed += not r.accepted
            now = time.time()
            out["ev_kw"] = np.array(
                [
                    ch.limit_kw(now) if self._plugged[i] >= 0 else 0.0
                    for i, ch in enumerate(self.chargers)
                ]
            )
        if self.modbus_on:
            await asyncio.gather(self._write_batteries(sp), self._write_pv(obs, sp))
            self._bat_kw = np.array([inv.battery_kw() for inv in self.batteries])
            limit = np.array([inv.pv_limit_kw() for inv in self.pv])
            out["battery_kw"] = self._bat_kw.copy()
            out["pv_curtail_kw"] = np.maximum(np.asarray(pv_true_kw, float) - limit, 0.0)
        await self.audit.flush()
        return replace(sp, **out)


def _pv_true(scenario) -> Callable[[int], np.ndarray]:
    """The PV power each inverter could deliver at a step: the sun the device sees."""
    plant = scenario.plant
    return scenario.pv_available_kw if plant is None else plant.pv_available_kw


class _Caller:
    def __init__(self, bridge: DeviceBridge, loop: asyncio.AbstractEventLoop, timeout_s: float):
        self.bridge, self.loop, self.timeout_s = bridge, loop, timeout_s

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout_s)


class ProtocolController(_Caller):
    """``inner`` controller seeing and acting through the device bridge (call ``act`` from a
    thread other than ``loop``'s)."""

    def __init__(self, inner, bridge: DeviceBridge, loop, timeout_s: float = 120.0) -> None:
        super().__init__(bridge, loop, timeout_s)
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self._pv_true = _pv_true(bridge.scenario)

    def reset(self, scenario) -> None:
        self.inner.reset(scenario)

    def act(self, obs: Observation) -> Setpoints:
        seen = self._call(self.bridge.sense(obs))
        sp = self.inner.act(seen)
        plan = getattr(self.inner, "last_plan", None)
        if plan is None:  # a shielded controller keeps its optimizer inside
            plan = getattr(getattr(self.inner, "inner", None), "last_plan", None)
        return self._call(self.bridge.actuate(seen, sp, self._pv_true(obs.step), plan))


class ProtocolTwin(_Caller):
    """A :class:`~gridsync.sim.twin.SteppedTwin` whose ``observe``/``advance`` go through
    the device bridge; everything else is the wrapped twin's."""

    def __init__(self, twin, bridge: DeviceBridge, loop, timeout_s: float = 120.0) -> None:
        super().__init__(bridge, loop, timeout_s)
        self._twin = twin

    def __getattr__(self, name: str):
        return getattr(self._twin, name)

    def observe(self) -> Observation:
        return self._call(self.bridge.sense(self._twin.observe()))

    def advance(self, obs: Observation, sp: Setpoints):
        step = self._twin.step
        applied = self._call(self.bridge.actuate(obs, sp, self._twin._pv_true_kw(step)))
        return self._twin.advance(obs, applied)
