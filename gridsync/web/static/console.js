// GridSync operator console: live dashboard over Server-Sent Events, approvals, overrides.
"use strict";
(function () {
  const root = document.getElementById("console");
  const prefix = root.dataset.prefix;
  const canOperate = root.dataset.canOperate === "true";
  const isAdmin = root.dataset.isAdmin === "true";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const fmt = (x, d = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
  let topo = null;
  let offsetS = 0; // server clock minus browser clock
  const pending = new Map(); // id -> {req, card}
  window.__gs = { seenAtMs: {}, states: 0, lastState: null, stateDelayMs: [] }; // for tests and bench

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  async function post(path, body) {
    const r = await fetch(prefix + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { ok: r.ok, status: r.status, data };
  }

  // ---------------------------------------------------------------- one-line diagram
  const BINS = [[0, 50, "#2e7d32"], [50, 80, "#c0a000"], [80, 100, "#e65100"], [100, 1e9, "#b00020"]];
  function drawDiagram(s) {
    if (!topo) return;
    const traces = BINS.map(([lo, hi, color]) => {
      const x = [], y = [], text = [];
      topo.branch_from.forEach((f, i) => {
        const l = s.loading_pct[i];
        if (l === null || l < lo || l >= hi) return;
        const t = topo.branch_to[i];
        x.push(topo.x[f], topo.x[t], null); y.push(topo.y[f], topo.y[t], null);
        text.push(`${topo.branch_names[i]}: ${fmt(l)} %`);
      });
      return { x, y, mode: "lines", line: { color, width: 3 }, hoverinfo: "skip",
               name: hi > 1e8 ? `> ${lo} %` : `${lo}–${hi} %`, type: "scatter" };
    });
    traces.push({
      x: topo.x, y: topo.y, mode: "markers", type: "scatter", name: "buses",
      text: topo.bus_names.map((n, i) => `${n}: ${fmt(s.vm_pu[i], 4)} p.u.`), hoverinfo: "text",
      marker: { size: topo.bus_names.map((_, i) => (i === topo.slack ? 14 : 8)),
                color: s.vm_pu, cmin: topo.limits.voltage_min_pu, cmax: topo.limits.voltage_max_pu, colorscale: "RdBu",
                colorbar: { title: { text: "p.u." }, thickness: 12 }, line: { width: 0.5, color: "#333" } },
    });
    Plotly.react("diagram", traces, {
      margin: { l: 10, r: 10, t: 10, b: 10 }, showlegend: true,
      legend: { orientation: "h", y: -0.02 }, xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" },
      uirevision: "diagram",
    }, { displaylogo: false, responsive: true });
  }

  function drawPower(s) {
    const h = s.history, o = s.outlook;
    const traces = [{ x: h.t, y: h.feeder_kw, name: "measured", mode: "lines", line: { color: "#14202c" } }];
    if (o) {
      traces.push({ x: o.t, y: o.low_kw, mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip" });
      traces.push({ x: o.t, y: o.high_kw, mode: "lines", line: { width: 0 }, fill: "tonexty",
                    fillcolor: "rgba(11,110,153,0.18)", name: "forecast band P10–P90" });
      traces.push({ x: o.t, y: o.feeder_kw, name: "forecast with planned dispatch", mode: "lines",
                    line: { color: "#0b6e99", dash: "dash" } });
      traces.push({ x: o.t, y: o.planned_flexible_kw, name: "planned flexible load", mode: "lines",
                    line: { color: "#8e44ad", dash: "dot" } });
    }
    Plotly.react("power", traces, {
      margin: { l: 50, r: 10, t: 10, b: 40 }, yaxis: { title: { text: "kW" } },
      legend: { orientation: "h", y: -0.2 }, uirevision: "power",
    }, { displaylogo: false, responsive: true });
  }

  function drawFleet(s) {
    const f = s.fleet;
    const rows = [
      ["Batteries", `mean SoC ${fmt(100 * f.battery_soc_mean, 0)} %, ${fmt(f.battery_kw)} kW`],
      ["EVs", `${f.ev_plugged} of ${f.ev_total} plugged, ${f.ev_charging} charging, ${fmt(f.ev_kw)} kW`],
      ["Appliances", `${f.deferrable_running} running, ${f.deferrable_waiting} waiting (of ${f.deferrable_total})`],
      ["Heat pumps", `${f.thermal_on} on, ${fmt(f.thermal_kw)} kW, mean indoor ${fmt(f.thermal_mean_temp_c)} °C`],
      ["PV", `${fmt(f.pv_kw)} kW produced, ${fmt(f.curtailed_kw)} kW curtailed`],
    ];
    const body = $("fleet").tBodies[0];
    body.replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
    Plotly.react("soc", [{ x: f.battery_soc.map((v) => 100 * v), type: "histogram", nbinsx: 20,
                           marker: { color: "#0b6e99" } }],
                 { margin: { l: 45, r: 10, t: 5, b: 35 }, xaxis: { title: { text: "state of charge (%)" }, range: [0, 100] },
                   yaxis: { title: { text: "batteries" } },
                   bargap: 0.05, uirevision: "soc" }, { displaylogo: false, responsive: true });
  }

  function drawAlerts(list) {
    $("alerts").replaceChildren(...list.map((a) =>
      el("li", { class: `sev-${a.severity}` }, `${a.sim_time.slice(5, 16).replace("T", " ")} [${a.source}] ${a.message}`)));
  }

  function drawOverrides(list) {
    $("overrides").replaceChildren(...list.map((o) => el("tr", {},
      el("td", {}, o.label || `${o.asset_kind} ${o.index}`), el("td", {}, o.mode),
      el("td", {}, o.setpoint_kw === null ? "–" : fmt(o.setpoint_kw, 2)), el("td", {}, o.by),
      el("td", { class: "small" }, o.warnings.join("; ")))));
  }

  // ---------------------------------------------------------------- FLISR drill and risk map (--resilience)
  const SUPPLY = { normal: ["#2e7d32", "supplied"], restored: ["#0b6e99", "restored by switching"],
                   off: ["#9aa5b1", "de-energised"], faulted: ["#b00020", "faulted section"] };
  const mid = (b, l) => [(b[l.from].x + b[l.to].x) / 2, (b[l.from].y + b[l.to].y) / 2];
  let drillLines = null;
  function busMap(buses) {
    const m = {};
    buses.forEach((b) => { m[Number(b.name.split(" ")[1])] = b; });
    return m;
  }

  function drawDrill(d) {
    const b = busMap(d.buses);
    const traces = [];
    const styles = { energised: ["#14202c", "solid", "energised line"], "closed, dead": ["#9aa5b1", "solid", "closed, no supply"],
                     open: ["#9aa5b1", "dot", "open switch"], faulted: ["#b00020", "dash", "faulted line"] };
    for (const [kind, [color, dash, name]] of Object.entries(styles)) {
      const x = [], y = [];
      d.lines.filter((l) => l.status === kind).forEach((l) => { x.push(b[l.from].x, b[l.to].x, null); y.push(b[l.from].y, b[l.to].y, null); });
      if (x.length) traces.push({ x, y, mode: "lines", type: "scatter", name, hoverinfo: "skip",
                                  line: { color, dash, width: kind === "energised" ? 3 : 2 } });
    }
    const sw = d.lines.filter((l) => l.remote);
    traces.push({ x: sw.map((l) => mid(b, l)[0]), y: sw.map((l) => mid(b, l)[1]), mode: "markers", type: "scatter",
                  name: "remote switch (■ closed, □ open)", hoverinfo: "text",
                  text: sw.map((l) => `${l.name}: ${l.closed ? "closed" : "open"}${l.breaker ? " (breaker)" : ""}` +
                                      `${l.normally_closed ? "" : ", normally open tie"}${l.loading_pct === null ? "" : `, ${fmt(l.loading_pct, 0)} %`}`),
                  marker: { symbol: sw.map((l) => (l.closed ? "square" : "square-open")), size: 10, color: "#14202c" } });
    for (const [st, [color, name]] of Object.entries(SUPPLY)) {
      const bs = d.buses.filter((x) => x.status === st);
      if (!bs.length) continue;
      traces.push({ x: bs.map((x) => x.x), y: bs.map((x) => x.y), mode: "markers+text", type: "scatter", name,
                    text: bs.map((x) => x.name.replace("Bus ", "")), textposition: "middle right",
                    hovertext: bs.map((x) => `${x.name}: ${name}${x.vm_pu === null ? "" : `, ${fmt(x.vm_pu, 3)} p.u.`}`),
                    hoverinfo: "text", marker: { color, size: bs.map((x) => (x.source ? 16 : 11)), line: { width: 1, color: "#333" } } });
    }
    Plotly.react("drill-diagram", traces, {
      margin: { l: 10, r: 10, t: 10, b: 10 }, showlegend: true, legend: { orientation: "h", y: -0.02 },
      xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" }, uirevision: "drill",
    }, { displaylogo: false, responsive: true });
    const k = d.by_status;
    const f = d.fault;
    $("drill-summary").textContent = f
      ? `Fault on ${f.line} (step ${f.step}): located ${f.located.join(", ")}; section ${f.section_buses.join(", ") || f.located.join(", ")} ` +
        `cut out by ${f.isolating_switches.join(", ")}. Restored ${k.restored.customers} customers (${fmt(k.restored.kw, 0)} kW); ` +
        `off ${k.off.customers} (${fmt(k.off.kw, 0)} kW); in the faulted section until repair ${k.faulted.customers} (${fmt(k.faulted.kw, 0)} kW).` +
        (d.request ? ` Switching plan: ${d.request.status}${d.request.decided_by ? " by " + d.request.decided_by : ""}.` : "")
      : (d.pending_fault ? `Drill fault on ${d.pending_fault} happens in the next step.` : "No fault: normal configuration.");
    $("drill-why").textContent = d.request ? d.request.explanation : "";
    $("drill-events").replaceChildren(...d.events.map((e) => el("li", {}, e)));
    if (!drillLines && $("drill-line")) {
      drillLines = d.lines.filter((l) => l.normally_closed).map((l) => l.name);
      $("drill-line").replaceChildren(...drillLines.map((n) => el("option", { value: n }, n)));
    }
  }

  const RISK_BINS = [[0, 0.8, "#2e7d32", "< 0.8×"], [0.8, 1.25, "#7cb342", "0.8–1.25×"],
                     [1.25, 3, "#f9a825", "1.25–3×"], [3, 1e9, "#b00020", "≥ 3× (high)"]];
  let riskDay = null;
  function drawRisk(r) {
    const b = busMap(window.__gs.lastState && window.__gs.lastState.flisr ? window.__gs.lastState.flisr.buses : []);
    if (!Object.keys(b).length) return;
    const traces = [];
    const bins = [...RISK_BINS.map(([lo, hi, color, name]) => [(l) => l.risk_ratio !== null && l.risk_ratio >= lo && l.risk_ratio < hi,
                                                              color, "solid", `${name} its average day`]),
                  [(l) => l.risk_ratio === null, "#9aa5b1", "dot", "normally open (no risk)"]];
    for (const [test, color, dash, name] of bins) {
      const x = [], y = [];
      r.lines.filter(test).forEach((l) => { x.push(b[l.from].x, b[l.to].x, null); y.push(b[l.from].y, b[l.to].y, null); });
      traces.push({ x: x.length ? x : [null], y: y.length ? y : [null], mode: "lines", type: "scatter", name, hoverinfo: "skip",
                    line: { color, dash, width: 4 } });
    }
    traces.push({ x: r.lines.map((l) => mid(b, l)[0]), y: r.lines.map((l) => mid(b, l)[1]), mode: "markers", type: "scatter",
                  name: "hover: drivers", hoverinfo: "text", marker: { size: 9, color: "rgba(0,0,0,0.25)" },
                  text: r.lines.map((l) => `${l.name} (${l.kind}): ${l.expected_faults.toExponential(2)} expected faults today` +
                    (l.risk_ratio === null ? " (normally open)" : `, ${fmt(l.risk_ratio, 2)}× its average day`) +
                    `<br>peak gust ${fmt(l.drivers.peak_gust_m_s)} m/s · max ${fmt(l.drivers.max_temp_c)} °C · age ${fmt(l.drivers.age_years, 0)} yr` +
                    `<br>driven by ${l.drivers.driven_by}`) });
    Plotly.react("risk-map", traces, {
      margin: { l: 10, r: 10, t: 10, b: 10 }, showlegend: true, legend: { orientation: "h", y: -0.02 },
      xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" }, uirevision: "risk",
    }, { displaylogo: false, responsive: true });
    const p = $("risk-posture");
    p.className = r.posture.high_risk ? "posture-high" : "";
    p.textContent = `Day ${r.day} (${r.forecast}): ${r.expected_faults.toExponential(2)} expected faults, ` +
      `P(any fault) ${fmt(100 * r.p_any_fault, 2)} %, riskiest element ${fmt(r.peak_element_ratio, 1)}× its average day ` +
      `(high above ${r.threshold_ratio}×). Posture: ${r.posture.actions.join("; ")}.`;
  }

  async function refreshRisk(force) {
    const s = window.__gs.lastState;
    if (!$("risk-map") || !s || !s.flisr) return;
    const day = s.sim_time.slice(0, 10);
    if (day === riskDay && !force) return;
    riskDay = day;
    const gust = $("risk-gust").value;
    const r = await fetch(prefix + "/api/risk" + (gust ? `?peak_gust_m_s=${encodeURIComponent(gust)}` : ""), { credentials: "same-origin" });
    if (r.ok) drawRisk(await r.json());
  }

  if ($("risk-form")) $("risk-form").addEventListener("submit", (e) => { e.preventDefault(); refreshRisk(true); });
  if ($("drill-form")) {
    $("drill-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const r = await post("/api/flisr/fault", { line: $("drill-line").value });
      $("drill-msg").textContent = r.ok ? `drill fault on ${r.data.line} queued: it happens at step ${r.data.happens_at_step}`
                                        : `refused (${r.status}): ${r.data && r.data.detail}`;
    });
    $("drill-repair").addEventListener("click", async () => {
      const r = await post("/api/flisr/repair", {});
      $("drill-msg").textContent = r.ok ? `${r.data.repaired} repaired: normal configuration next step`
                                        : `refused (${r.status}): ${r.data && r.data.detail}`;
    });
  }

  // ---------------------------------------------------------------- approvals
  function outcomeBox(title, o) {
    return el("div", { class: "outcome" }, el("b", {}, title), el("br"), `${o.label}`, el("br"),
      `expected cost: ${o.cost_eur === null ? "n/a" : fmt(o.cost_eur, 2) + " EUR"}`, el("br"),
      el("span", { class: "small" }, o.risk));
  }

  function requestCard(req) {
    const j = req.justification;
    const inputs = [];
    const assetRows = req.assets.map((a) => {
      const inp = el("input", { class: "kw", type: "number", step: "0.1", value: String(a.proposed_kw),
                                min: String(a.lower_kw), max: String(a.upper_kw) });
      if (!canOperate) inp.disabled = true;
      inputs.push(inp);
      return el("tr", {}, el("td", {}, a.label), el("td", {}, fmt(a.no_action_kw, 2)),
        el("td", {}, inp), el("td", { class: "small muted" }, `${fmt(a.lower_kw, 1)} … ${fmt(a.upper_kw, 1)}`));
    });
    const msg = el("span", { class: "small" });
    const decide = async (what) => {
      const body = { note: "" };
      if (what === "edit") body.values_kw = inputs.map((i) => Number(i.value));
      const r = await post(`/api/approvals/${req.id}/${what}`, body);
      msg.textContent = r.ok ? `${what} sent` : `refused (${r.status}): ${r.data && r.data.detail}`;
    };
    const actions = canOperate
      ? el("div", { class: "actions" },
          el("button", { class: "approve", "data-action": "approve", onclick: () => decide("approve") }, "Approve"),
          el("button", { class: "reject", "data-action": "reject", onclick: () => decide("reject") }, "Reject"),
          req.kind === "switching" ? "" :
            el("button", { class: "edit", "data-action": "edit", onclick: () => decide("edit") }, "Apply edited values"),
          msg)
      : el("div", { class: "actions muted small" }, "read only (viewer)");
    const countdown = el("span", { class: "countdown" }, "");
    const card = el("div", { class: "request", "data-request-id": req.id, "data-kind": req.kind },
      countdown,
      el("h4", {}, `${req.title}`),
      el("div", { class: "muted small" }, `${req.time} · ${req.kind.replace("_", " ")} · ${fmt(req.magnitude_kw)} kW · if unanswered: ${req.fail_safe.replace("_", " ")}`),
      el("p", { class: "summary" }, j.summary),
      el("ul", {}, ...j.drivers.map((d) => el("li", {}, d)), ...j.binding.map((b) => el("li", {}, b.text))),
      el("div", { class: "outcomes" }, outcomeBox("If approved", j.acting), outcomeBox("If not (fail-safe)", j.not_acting)),
      el("details", {}, el("summary", {}, `${req.assets.length} assets (kW; edit then apply)`),
        el("table", { class: "table small" }, el("thead", {}, el("tr", {}, el("th", {}, "asset"), el("th", {}, "no action"),
          el("th", {}, "proposed"), el("th", {}, "allowed"))), el("tbody", {}, ...assetRows))),
      actions,
      el("div", { class: "muted small" }, `source: ${j.source}`));
    card._countdown = countdown;
    return card;
  }

  function upsertPending(list) {
    const ids = new Set(list.map((r) => r.id));
    for (const [id, p] of pending) if (!ids.has(id)) { p.card.remove(); pending.delete(id); }
    for (const req of list) {
      if (pending.has(req.id)) { pending.get(req.id).req = req; continue; }
      const card = requestCard(req);
      $("pending").prepend(card);
      pending.set(req.id, { req, card });
      if (!(req.id in window.__gs.seenAtMs)) window.__gs.seenAtMs[req.id] = Date.now();
    }
    $("pending-count").textContent = String(pending.size);
    tickCountdowns();
  }

  function drawRecent(list) {
    $("recent").replaceChildren(...list.map((r) => el("tr", { "data-request-id": r.id },
      el("td", {}, r.time), el("td", {}, r.title),
      el("td", { class: `status-${r.status}` }, r.status), el("td", {}, r.decided_by), el("td", { class: "small" }, r.note))));
  }

  function tickCountdowns() {
    const now = Date.now() / 1000 + offsetS;
    for (const { req, card } of pending.values())
      card._countdown.textContent = `${Math.max(0, req.deadline_s - now).toFixed(0)} s left`;
  }
  setInterval(tickCountdowns, 250);

  // ---------------------------------------------------------------- live stream
  function onState(s) {
    window.__gs.states += 1;
    window.__gs.lastState = s;
    window.__gs.stateDelayMs.push(Date.now() - 1000 * s.wall_s);
    if (window.__gs.stateDelayMs.length > 200) window.__gs.stateDelayMs.shift();
    offsetS = s.wall_s - Date.now() / 1000;
    $("sim-time").textContent = s.sim_time.replace("T", " ").slice(0, 16);
    $("feeder-kw").textContent = `${fmt(s.feeder_kw)} kW`;
    $("v-range").textContent = `${fmt(s.vm_min_pu, 3)}–${fmt(s.vm_max_pu, 3)} p.u.`;
    $("max-loading").textContent = `${fmt(s.loading_max_pct, 0)} %`;
    $("price").textContent = `${fmt(s.price_eur_per_kwh, 2)} EUR/kWh`;
    const k = s.kpi;
    $("kpi-cost").textContent = `${fmt(k.total_cost_eur, 2)} EUR`;
    $("kpi-peak").textContent = `${fmt(k.peak_import_kw)} kW`;
    $("kpi-emissions").textContent = `${fmt(k.emissions_kg)} kg`;
    $("kpi-violations").textContent =
      `${k.voltage_violation_bus_steps} voltage (bus-steps) · ${k.overload_branch_steps} overload (branch-steps)`;
    $("kpi-curtailed").textContent = `${fmt(k.curtailed_kwh)} kWh`;
    drawDiagram(s); drawPower(s); drawFleet(s); drawAlerts(s.alerts); drawOverrides(s.overrides);
    if (s.flisr && $("drill-diagram")) { drawDrill(s.flisr); refreshRisk(false); }
    upsertPending(s.approvals.pending); drawRecent(s.approvals.recent);
  }

  function onApproval(ev) {
    const req = ev.request;
    const list = [...pending.values()].map((p) => p.req).filter((r) => r.id !== req.id);
    if (req.status === "pending") list.push(req);
    upsertPending(list);
    if (req.status !== "pending" && window.__gs.lastState) {
      const recent = [req, ...window.__gs.lastState.approvals.recent.filter((r) => r.id !== req.id)].slice(0, 8);
      window.__gs.lastState.approvals.recent = recent;
      drawRecent(recent);
    }
  }

  function connect() {
    const es = new EventSource(prefix + "/events");
    es.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").className = "pill live"; });
    es.addEventListener("error", () => { $("conn").textContent = "reconnecting…"; $("conn").className = "pill down"; });
    es.addEventListener("state", (e) => onState(JSON.parse(e.data)));
    es.addEventListener("approval", (e) => onApproval(JSON.parse(e.data)));
    es.addEventListener("expired", () => { es.close(); window.location = prefix + "/login"; });
  }

  // ---------------------------------------------------------------- forms
  if (canOperate && $("override-form")) {
    $("override-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const r = await post("/api/overrides", {
        asset_kind: $("ov-kind").value, index: Number($("ov-index").value), mode: $("ov-mode").value,
        setpoint_kw: Number($("ov-kw").value) });
      $("ov-msg").textContent = r.ok ? `override ${r.data.mode} on ${r.data.asset_kind} ${r.data.index}` +
        (r.data.warnings.length ? ` — ${r.data.warnings.join("; ")}` : "") : `refused (${r.status}): ${r.data && r.data.detail}`;
    });
  }
  async function refreshAdmin() {
    const r = await fetch(prefix + "/api/audit?limit=15", { credentials: "same-origin" });
    if (!r.ok) return;
    const rows = await r.json();
    $("audit").replaceChildren(...rows.map((a) => el("tr", {},
      el("td", {}, new Date(a.ts_s * 1000).toLocaleTimeString()), el("td", {}, a.actor), el("td", {}, a.action), el("td", {}, a.target))));
  }
  if (isAdmin) {
    fetch(prefix + "/api/policy", { credentials: "same-origin" }).then((r) => r.json()).then((p) => {
      $("pol-timeout").value = p.timeout_s; $("pol-curt").value = p.curtailment_kw;
      $("pol-limit").value = p.feeder_import_limit_kw === null ? "" : p.feeder_import_limit_kw;
    });
    $("policy-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = { timeout_s: Number($("pol-timeout").value), curtailment_kw: Number($("pol-curt").value),
                     feeder_import_limit_kw: $("pol-limit").value === "" ? null : Number($("pol-limit").value) };
      const r = await post("/api/policy", body);
      $("pol-msg").textContent = r.ok ? "saved" : `refused (${r.status}): ${r.data && r.data.detail}`;
    });
    refreshAdmin(); setInterval(refreshAdmin, 5000);
  }

  fetch(prefix + "/api/topology", { credentials: "same-origin" }).then((r) => r.json()).then((t) => {
    topo = t;
    if (window.__gs.lastState) drawDiagram(window.__gs.lastState);
  });
  connect();
})();
