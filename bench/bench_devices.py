"""Field-device benchmark: OCPP chargers and SunSpec inverters on loopback, one process.

    .venv/bin/python bench/bench_devices.py scale [--chargers 500] [--inverters 100] [--minutes 10]
    .venv/bin/python bench/bench_devices.py parity [--controllers smart-rule uncontrolled tou mpc+shield]
    .venv/bin/python bench/bench_devices.py sensitivity [--controllers smart-rule mpc+shield]

``scale``: N simulated OCPP 2.0.1 chargers (``ocpp`` clients, each with a car plugged in) and M
simulated SunSpec PV+battery inverters (pymodbus servers), the chargers in one process and the
inverters in another (as hardware would be: the devices' CPU is not GridSync's), against
GridSync's CSMS and Modbus client in this one. Every ``--period`` s (15) GridSync sends every charger a TxProfile and every battery
a verified SunSpec setpoint (setpoint-to-acknowledgement = from sending the command to the
device's answer; for Modbus the write and its read-back), each charger sends MeterValues on
its own 15-s clock and GridSync polls every inverter. All readings go through the validating
ingestion path onto an in-process bus, where they are counted per device (lost = messages the
devices began that ingestion did not accept, plus failed polls; a device's 15-s slot k after
its first reading is covered when a reading arrived within half a period of it). All
three processes share the machine's 2 cores with whatever else runs (load average recorded).

``parity``: one day of the bundled scenario (with its plant mismatch) per controller, once
directly (``gridsync.sim.simulate``) and once through the protocol loop
(``gridsync.devices.loop``: twin -> simulated devices -> OCPP/Modbus -> controller -> OCPP/
Modbus -> devices -> twin); every KPI side by side with its relative difference.

``sensitivity``: the controller alone, without protocols, with only the SoC it reads rounded to
SunSpec's 0.01 % or only its battery setpoints rounded to 1 W: how much of a parity difference
the controller itself makes out of the protocols' resolution.

Each part prints a table and updates its section of bench/results/devices.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "devices.json"
sys.path.insert(0, str(ROOT))

from gridsync.bus import InProcessBus  # noqa: E402
from gridsync.data.ingest import Ingestor  # noqa: E402
from gridsync.devices.modbus_client import ModbusFleet, SunSpecClient  # noqa: E402
from gridsync.devices.modbus_sim import SimInverter  # noqa: E402
from gridsync.devices.ocpp_csms import Csms  # noqa: E402
from gridsync.devices.ocpp_sim import SimCharger  # noqa: E402
from gridsync.devices.telemetry import ReadingSink  # noqa: E402


def _save(section: str, payload: dict) -> None:
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data[section] = {**payload, "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    data["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2))
    print(f"wrote {OUT.relative_to(ROOT)} [{section}]")


def _q(xs, p):
    return round(float(np.quantile(xs, p)), 4) if len(xs) else None


def _keys(n_ch: int) -> dict[str, str]:
    return {f"cp-{i:04d}": f"key-{i:04d}-0123456789abcdef" for i in range(n_ch)}


async def _devices(url: str, n_ch: int, n_inv: int, period_s: float, validate: bool) -> None:
    """The device process: N chargers and M inverters on loopback. Prints the inverters'
    ports as one JSON line, runs until stdin closes, then prints its counters."""
    invs = [SimInverter(f"inv-{j:04d}", 10.0, 10.0, 5.0) for j in range(n_inv)]
    await asyncio.gather(*(d.start() for d in invs))
    print(json.dumps({"ports": {d.name: d.port for d in invs}}), flush=True)
    chargers = [
        SimCharger(cp, url, k, max_power_kw=11.0, meter_interval_s=period_s, validate=validate)
        for cp, k in _keys(n_ch).items()
    ]
    for ch in chargers:
        ch.energy_kwh, ch.soc_pct = 10.0, 40.0
        ch.metering = False
        await ch.start()
    while not all(ch.connected.is_set() for ch in chargers):
        await asyncio.sleep(0.1)
    await asyncio.gather(*(ch.plug_in(f"tag-{i}") for i, ch in enumerate(chargers)))
    for ch in chargers:  # meters report on their own clocks once every car is plugged in
        ch.metering = True
    rng = np.random.default_rng(1)
    cpu0 = time.process_time()

    async def physics():
        while True:  # the hardware follows what it was told; meters follow the hardware
            for ch in chargers:
                ch.power_kw = ch.limit_kw()
                ch.energy_kwh += ch.power_kw * period_s / 3600.0
            for d in invs:
                d.measure(float(rng.uniform(0, 10)), d.battery_kw(), 0.5, 1.0)
            await asyncio.sleep(period_s)

    task = asyncio.create_task(physics())
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    task.cancel()
    for ch in chargers:
        ch.metering = False
    await asyncio.sleep(3.0)  # messages in flight land
    stats = {
        "meter_attempts": sum(ch.meter_attempts for ch in chargers) + n_ch,  # + tx starts
        "meter_acknowledged": sum(ch.meter_readings_sent for ch in chargers),
        "profiles_rejected": sum(ch.rejected_profiles for ch in chargers),
        "device_process_cpu_s": round(time.process_time() - cpu0, 1),
    }
    print(json.dumps({"stats": stats}), flush=True)
    for ch in chargers:
        await ch.stop()
    await asyncio.gather(*(d.stop() for d in invs))


async def _scale(n_ch: int, n_inv: int, seconds: float, period_s: float, validate: bool) -> dict:
    """GridSync's process: CSMS, Modbus client, ingestion onto an in-process bus."""
    bus = InProcessBus()
    await bus.connect()
    arrivals: dict[str, list[float]] = defaultdict(list)
    on_bus = 0

    async def count(msg):
        nonlocal on_bus
        d = msg.data
        if d.get("kind") != "readings":
            return
        t = msg.data["received_s"]
        seen = set()
        for dev in d["device_id"]:
            on_bus += 1
            if dev not in seen:
                arrivals[dev].append(t)
                seen.add(dev)

    dead: list = []

    async def keep_dead(msg):
        dead.append(msg.data)

    await bus.subscribe("telemetry", count, max_deliver=1)
    await bus.subscribe("deadletter", keep_dead, max_deliver=1)
    ingest = Ingestor(bus).submit
    keys = _keys(n_ch)
    csms = Csms(credentials=keys, default_limit_kw=4.2, sink=ReadingSink(ingest, origin="ocpp"))
    await csms.start()

    def cmd(chargers: int, inverters: int) -> list[str]:
        c = [
            sys.executable,
            __file__,
            "devices",
            "--url",
            csms.url,
            "--chargers",
            str(chargers),
            "--inverters",
            str(inverters),
            "--period",
            str(period_s),
        ]
        return c + ([] if validate else ["--devices-skip-validation"])

    t_up = time.perf_counter()
    # chargers and inverters are different hardware: one simulator process each
    procs = [
        await asyncio.create_subprocess_exec(
            *cmd(*kinds), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        for kinds in ((n_ch, 0), (0, n_inv))
    ]
    ports: dict[str, int] = {}
    for proc in procs:
        ports.update(json.loads(await proc.stdout.readline())["ports"])
    fleet = ModbusFleet(
        {name: SunSpecClient(name, "127.0.0.1", port) for name, port in ports.items()},
        ReadingSink(ingest, origin="modbus"),
    )
    await fleet.connect()

    def ready():
        return len(csms.online()) == n_ch and all(
            st.session is not None for st in csms.chargers.values()
        )

    while not ready():
        await asyncio.sleep(0.1)
    boot_s = time.perf_counter() - t_up
    print(
        f"  {n_ch} chargers booted with a car plugged in after {boot_s:.1f} s; "
        f"{n_inv} inverters discovered (devices in processes {[p.pid for p in procs]})"
    )

    ocpp_lat: list[float] = []
    mb_lat: list[float] = []
    issued_lat: list[float] = []  # from the round's start (setpoints issued) to each answer
    loads: list[float] = []  # 1-min load average at each round
    round_cpu: list[float] = []  # CPU GridSync's process spent while a round was in flight
    round_wall: list[float] = []
    status: dict[str, int] = defaultdict(int)
    rng = np.random.default_rng(0)
    t0, cpu0 = time.time(), time.process_time()
    polls = rounds = 0

    async def poll_loop():
        nonlocal polls
        due = time.monotonic()
        while True:
            await fleet.poll_all()
            polls += 1
            due += period_s
            await asyncio.sleep(max(due - time.monotonic(), 0.0))

    poller = asyncio.create_task(poll_loop())
    try:
        due = time.monotonic()
        while time.time() - t0 < seconds:
            kw = rng.uniform(0.0, 11.0, n_ch).round(1)
            sched = {cp: [(0, float(kw[i]))] for i, cp in enumerate(keys)}
            bat = rng.uniform(-5.0, 5.0, n_inv).round(2)
            c0, w0 = time.process_time(), time.perf_counter()
            loads.append(os.getloadavg()[0])

            async def answered(coro, w0=w0):
                res = await coro
                issued_lat.append(time.perf_counter() - w0)
                return res

            start = time.time()
            ocpp_res, mb_res = await asyncio.gather(
                asyncio.gather(
                    *(answered(csms.set_schedule(cp, p, start)) for cp, p in sched.items())
                ),
                asyncio.gather(
                    *(
                        answered(c.set_battery_kw(float(bat[j])))
                        for j, c in enumerate(fleet.clients.values())
                    )
                ),
            )
            await csms.audit.flush()
            round_cpu.append(time.process_time() - c0)
            round_wall.append(time.perf_counter() - w0)
            for r in ocpp_res:
                ocpp_lat.append(r.latency_s)
                status[f"ocpp:{r.status}"] += 1
            for r in mb_res:
                mb_lat.append(r.latency_s)
                status[f"modbus:{r.status}"] += 1
            rounds += 1
            due += period_s
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
    finally:
        poller.cancel()
    wall, cpu = time.time() - t0, time.process_time() - cpu0
    dev_stats: dict[str, float] = defaultdict(float)
    for proc in procs:
        proc.stdin.close()
        for k, v in json.loads(await proc.stdout.readline())["stats"].items():
            dev_stats[k] += v
        await proc.wait()
    fleet.close()
    await csms.stop()
    await bus.close()

    # coverage: each device reports on its own 15-s schedule from its first reading after t0;
    # slot k is covered when a reading arrived within half a period of first + k x period
    covered = missing = 0
    gaps: list[float] = []
    for dev in list(keys) + list(ports):
        ts = np.sort(np.asarray(arrivals.get(dev, [])))
        ts = ts[(ts >= t0) & (ts <= t0 + wall)]
        if len(ts) == 0:
            missing += int(wall // period_s)
            continue
        slots = np.arange(int((t0 + wall - ts[0]) // period_s) + 1)
        k = np.round((ts - ts[0]) / period_s).astype(int)
        have = np.isin(slots, k[np.abs(ts - ts[0] - k * period_s) < period_s / 2])
        covered += int(have.sum())
        missing += int((~have).sum())
        gaps += np.diff(ts).tolist()
    accepted = csms.sink.readings + fleet.sink.readings
    return {
        "chargers": n_ch,
        "inverters": n_inv,
        "devices_in_own_processes": "chargers in one, inverters in another",
        "run_s": round(wall, 1),
        "period_s": period_s,
        "gridsync_cpu_s": round(cpu, 1),
        "gridsync_cpu_share_of_one_core": round(cpu / wall, 3),
        "device_processes_cpu_s": round(dev_stats["device_process_cpu_s"], 1),
        "boot_all_chargers_s": round(boot_s, 2),
        "setpoint_rounds": rounds,
        "ocpp_setpoints": len(ocpp_lat),
        "ocpp_ack_p50_s": _q(ocpp_lat, 0.5),
        "ocpp_ack_p99_s": _q(ocpp_lat, 0.99),
        "ocpp_ack_max_s": _q(ocpp_lat, 1.0),
        "modbus_setpoints": len(mb_lat),
        "modbus_write_readback_p50_s": _q(mb_lat, 0.5),
        "modbus_write_readback_p99_s": _q(mb_lat, 0.99),
        "modbus_write_readback_max_s": _q(mb_lat, 1.0),
        "all_setpoints_ack_p50_s": _q(ocpp_lat + mb_lat, 0.5),
        "all_setpoints_ack_p95_s": _q(ocpp_lat + mb_lat, 0.95),
        "all_setpoints_ack_p99_s": _q(ocpp_lat + mb_lat, 0.99),
        "issued_to_ack_p50_s": _q(issued_lat, 0.5),
        "issued_to_ack_p95_s": _q(issued_lat, 0.95),
        "issued_to_ack_p99_s": _q(issued_lat, 0.99),
        "issued_to_ack_max_s": _q(issued_lat, 1.0),
        "load_avg_1m_during_run": {
            "min": round(min(loads), 2),
            "median": round(float(np.median(loads)), 2),
            "max": round(max(loads), 2),
        },
        "round_wall_p50_s": _q(round_wall, 0.5),
        "round_gridsync_cpu_p50_s": _q(round_cpu, 0.5),
        "round_gridsync_cpu_max_s": _q(round_cpu, 1.0),
        "statuses": dict(status),
        "profiles_rejected_by_chargers": int(dev_stats["profiles_rejected"]),
        "meter_messages_attempted": int(dev_stats["meter_attempts"]),
        "meter_messages_acknowledged": int(dev_stats["meter_acknowledged"]),
        "meter_messages_accepted": csms.sink.accepted,
        "modbus_polls": polls,
        "modbus_poll_failures": fleet.poll_failures,
        "readings_accepted_by_ingestion": accepted,
        "readings_on_bus": on_bus,
        "telemetry_messages_lost": int(dev_stats["meter_attempts"] - csms.sink.accepted)
        + fleet.poll_failures,
        "readings_lost_after_ingestion": accepted - on_bus,
        "dead_letters": len(dead),
        "device_slots_covered": covered,
        "device_slots_missing": missing,
        "gap_between_readings_p99_s": _q(gaps, 0.99),
        "gap_between_readings_max_s": _q(gaps, 1.0),
    }


def scale(args) -> None:
    logging.getLogger("gridsync.devices").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    validate = not args.devices_skip_validation
    res = asyncio.run(
        _scale(args.chargers, args.inverters, args.minutes * 60.0, args.period, validate)
    )
    res["simulated_chargers_validate_requests"] = validate
    res["target"] = (
        "setpoint-to-ack p99 < 1 s; every device every 15 s; 0 lost readings over 10 min"
    )
    # the whole round counts: a setpoint is issued when the round starts, also for the
    # commands GridSync's event loop gets to last
    res["meets_latency_target"] = (res["issued_to_ack_p99_s"] or 99) < 1.0
    res["meets_telemetry_target"] = (
        res["telemetry_messages_lost"] == 0
        and res["readings_lost_after_ingestion"] == 0
        and res["device_slots_missing"] == 0
    )
    for k, v in res.items():
        print(f"  {k:32s} {v}")
    tag = "" if validate else "_devices_skip_validation"
    _save(f"scale_{args.chargers}x{args.inverters}_{args.minutes:g}min{tag}", res)


def _unhurried(ctl, time_limit_s: float = 300.0):
    """The controller with its MPC (if any) given ``time_limit_s`` per solve: on a shared
    machine the default budget (10 s) runs out at load-dependent steps, and a plan that falls
    back in one run but not the other would be counted as the protocol loop's difference."""
    import dataclasses

    from gridsync.dispatch.mpc import MPCController

    inner = getattr(ctl, "inner", ctl)
    if isinstance(inner, MPCController):
        inner.config = dataclasses.replace(inner.config, time_limit_s=time_limit_s)
    return ctl


def parity(args) -> None:
    from gridsync.devices.loop import DeviceBridge, ProtocolController
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    sc = load_scenario(days=1, history_days=7)
    # controllers not run this time keep their earlier entries (each says when it was measured)
    old = json.loads(OUT.read_text()).get("parity_1day", {}) if OUT.exists() else {}
    out = {
        "scenario": "bundled default, 1 day from its start, plant mismatch on",
        "controllers": old.get("controllers", {}),
    }
    for name in args.controllers:
        t0 = time.perf_counter()
        direct = compute_kpis(simulate(sc, _unhurried(make_controller(name))), sc)
        t_direct = time.perf_counter() - t0

        async def through(name=name):
            bus = InProcessBus()
            await bus.connect()
            bridge = DeviceBridge(sc, ("ocpp", "modbus"), ingest=Ingestor(bus).submit)
            await bridge.start()
            try:
                ctl = ProtocolController(
                    _unhurried(make_controller(name)), bridge, asyncio.get_running_loop()
                )
                res = await asyncio.to_thread(simulate, sc, ctl)
                return compute_kpis(res, sc), bridge
            finally:
                await bridge.stop()
                await bus.close()

        t0 = time.perf_counter()
        loop_kpi, bridge = asyncio.run(through())
        t_loop = time.perf_counter() - t0
        rows, worst = {}, (0.0, "")
        for key, a in direct.items():
            if key == "runtime_s":
                continue
            b = loop_kpi[key]
            rel = abs(b - a) / abs(a) if abs(a) > 1e-9 else abs(b - a)
            rows[key] = {"direct": round(a, 6), "protocol_loop": round(b, 6), "rel_diff": rel}
            worst = max(worst, (rel, key))
        st = bridge.stats.summary()
        out["controllers"][name] = {
            "kpis": rows,
            "max_rel_diff": worst[0],
            "max_rel_diff_kpi": worst[1],
            "within_1pct": worst[0] <= 0.01,
            "cost_incl_penalties_rel_diff": rows["total_cost_incl_penalties_eur"]["rel_diff"],
            "measured_at_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "direct_s": round(t_direct, 1),
            "protocol_loop_s": round(t_loop, 1),
            "bridge": st,
            "readings_accepted": bridge.csms.sink.readings + bridge.modbus.sink.readings,
            "readings_rejected_messages": bridge.csms.sink.rejected + bridge.modbus.sink.rejected,
            "devices": {
                "chargers": len(bridge.chargers),
                "inverters": len(bridge.batteries) + len(bridge.pv),
            },
        }
        print(
            f"\n{name}: max relative KPI difference {worst[0]:.2e} ({worst[1]}); "
            f"direct {t_direct:.1f} s, protocol loop {t_loop:.1f} s"
        )
        print(f"  {'kpi':36s} {'direct':>14s} {'loop':>14s} {'rel':>10s}")
        for key, r in rows.items():
            print(
                f"  {key:36s} {r['direct']:14.4f} {r['protocol_loop']:14.4f} {r['rel_diff']:10.2e}"
            )
        print(f"  bridge: {st}")
        _save("parity_1day", out)  # after each controller: a crash keeps what was measured


def sensitivity(args) -> None:
    """The controller alone, no protocols: its KPIs when only the battery SoC it reads is
    rounded to SunSpec's 0.01 % (802.SoC with SoC_SF = -2), or only its battery setpoints to
    1 W. Tells whether a protocol-loop difference is the loop's or the controller's."""
    import dataclasses

    from gridsync.sim.builder import load_scenario
    from gridsync.sim.kpi import compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.simulator import simulate

    sc = load_scenario(days=1, history_days=7)
    cap = sc.fleet.battery.capacity_kwh

    class Rounded:
        def __init__(self, inner, what):
            self.inner, self.what = inner, what
            self.name = getattr(inner, "name", "controller")

        def reset(self, scenario):
            self.inner.reset(scenario)

        def act(self, obs):
            if self.what == "soc_0.01pct":
                e = np.round(obs.battery_energy_kwh / cap * 1e4) / 1e4 * cap
                obs = dataclasses.replace(obs, battery_energy_kwh=e)
            sp = self.inner.act(obs)
            if self.what == "battery_setpoint_1W":
                sp = dataclasses.replace(sp, battery_kw=np.round(sp.battery_kw, 3))
            return sp

    keys = (
        "total_cost_incl_penalties_eur",
        "total_cost_eur",
        "peak_import_kw",
        "end_battery_delta_kwh",
        "curtailed_kwh",
    )
    out = {}
    for name in args.controllers:
        base = compute_kpis(simulate(sc, _unhurried(make_controller(name))), sc)
        row = {"exact": {k: base[k] for k in keys}}
        for what in ("soc_0.01pct", "battery_setpoint_1W"):
            k = compute_kpis(simulate(sc, Rounded(_unhurried(make_controller(name)), what)), sc)
            row[what] = {
                key: {
                    "value": k[key],
                    "rel_diff": (k[key] - base[key]) / abs(base[key])
                    if abs(base[key]) > 1e-9
                    else k[key] - base[key],
                }
                for key in keys
            }
        out[name] = row
        print(f"{name}:")
        for what in ("soc_0.01pct", "battery_setpoint_1W"):
            rel = {key: f"{v['rel_diff']:+.2e}" for key, v in row[what].items()}
            print(f"  {what:22s} {rel}")
    _save("sensitivity_1day", out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    s = sub.add_parser("scale")
    s.add_argument("--chargers", type=int, default=500)
    s.add_argument("--inverters", type=int, default=100)
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--period", type=float, default=15.0)
    s.add_argument(
        "--devices-skip-validation",
        action="store_true",
        help="simulated chargers skip the JSON-schema check of incoming requests (in the "
        "field that CPU is the charger's, not GridSync's)",
    )
    p = sub.add_parser("parity")
    p.add_argument(
        "--controllers", nargs="+", default=["smart-rule", "uncontrolled", "tou", "mpc+shield"]
    )
    q = sub.add_parser("sensitivity")
    q.add_argument("--controllers", nargs="+", default=["smart-rule", "mpc+shield"])
    d = sub.add_parser("devices", help="internal: the device process of `scale`")
    d.add_argument("--url", required=True)
    d.add_argument("--chargers", type=int, required=True)
    d.add_argument("--inverters", type=int, required=True)
    d.add_argument("--period", type=float, required=True)
    d.add_argument("--devices-skip-validation", action="store_true")
    args = ap.parse_args()
    parts = {"scale": scale, "parity": parity, "sensitivity": sensitivity, "devices": devices}
    parts[args.part](args)


def devices(args) -> None:
    logging.getLogger("gridsync.devices").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(
        _devices(
            args.url, args.chargers, args.inverters, args.period, not args.devices_skip_validation
        )
    )


if __name__ == "__main__":
    main()
