// The report's head explorer (vitheads/explorer.py packs the data). Plain JavaScript, no network.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const root = document.getElementById("explorer");
  const N_IMAGES = D.images.length, G = D.grid;
  const state = { layer: 1, head: 1, colour: "label", mode: D.importanceMode,
                  view: D.views.some((v) => v.name === D.labelView) ? D.labelView : D.views[0].name,
                  filter: "", outlines: new Set(Object.keys(D.outlines)) };
  const maps = {};  // view -> Uint8Array [images, layers, heads, G, G]
  for (const v of D.views) maps[v.name] = Uint8Array.from(atob(D.maps[v.name]), (c) => c.charCodeAt(0));
  const record = (l, h) => D.records[(l - 1) * D.heads + (h - 1)];
  const name = (l, h) => `L${l}H${h}`;
  const pct = (x) => (x === null ? "n/a" : `${x >= 0 ? "+" : ""}${x.toFixed(3)}%`);
  const ci = (lo, hi) => `[${pct(lo)}, ${pct(hi)}]`;
  const el = (tag, attrs = {}, text = "") => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text) node.textContent = text;
    return node;
  };

  // Controls, grid, panel.
  root.innerHTML = `
    <div class="ex-controls">
      <span>Colour cells by <label><input type="radio" name="ex-colour" value="label" checked> label</label>
        <label><input type="radio" name="ex-colour" value="effect"> ablation effect</label>
        <select id="ex-mode"></select></span>
      <span>Filter <select id="ex-filter"><option value="">all labels</option></select></span>
      <span>Find <input id="ex-search" placeholder="L12H3" size="7"> <span id="ex-search-msg"></span></span>
    </div>
    <div class="ex-body">
      <div><table id="ex-grid"></table><div id="ex-legend"></div>
        <p class="ex-note">Click a cell or use the arrow keys. Effect colours: test MSE increase when the head is
        ablated, blue = lower, red = higher, on a log scale symmetric about 0; a black frame marks a 95% CI that
        excludes 0.</p></div>
      <div id="ex-panel">
        <h3 id="ex-title"></h3><p id="ex-label"></p>
        <table id="ex-effects"></table>
        <table id="ex-regions"></table>
        <p id="ex-verdicts"></p>
        <table id="ex-causal"></table>
        <p class="ex-note" id="ex-causal-note"></p>
        <div class="ex-controls">
          <span>View <select id="ex-view"></select></span>
          <span id="ex-outline-toggles">Outlines</span>
        </div>
        <p id="ex-view-note" class="ex-note"></p>
        <div id="ex-scale"></div>
        <div id="ex-maps"></div>
      </div>
    </div>`;
  const $ = (id) => document.getElementById(id);
  for (const m of Object.keys(D.records[0].effects)) $("ex-mode").append(el("option", { value: m }, `${m} ablation`));
  $("ex-mode").value = state.mode;
  for (const l of D.labels) $("ex-filter").append(el("option", { value: l }, l));
  for (const v of D.views) $("ex-view").append(el("option", { value: v.name }, v.title + (v.reachesOutput ? "" : " (not read by the readout)")));
  $("ex-view").value = state.view;
  for (const [kind, colour] of Object.entries(D.outlineColours)) {
    if (!D.outlines[kind]) continue;
    const box = el("input", { type: "checkbox", "data-kind": kind, checked: "" });
    const label = el("label", { style: `color:${colour === "#ffff00" ? "#9a8f00" : colour}` });
    label.append(box, ` ${kind}`);
    $("ex-outline-toggles").append(" ", label);
  }

  const grid = $("ex-grid");
  const headRow = el("tr");
  headRow.append(el("th", {}, ""));
  for (let h = 1; h <= D.heads; h++) headRow.append(el("th", {}, `H${h}`));
  grid.append(headRow);
  for (let l = 1; l <= D.layers; l++) {
    const row = el("tr");
    row.append(el("th", {}, `L${l}`));
    for (let h = 1; h <= D.heads; h++) row.append(el("td", { "data-layer": l, "data-head": h, "data-name": name(l, h) }));
    grid.append(row);
  }

  const LINEAR_WITHIN = 0.1;  // % : a symmetric log scale, linear near 0, so one +60% head does not bleach the rest
  function effectColour(x, limit) {
    const t = Math.min(1, Math.log1p(Math.abs(x) / LINEAR_WITHIN) / Math.log1p(limit / LINEAR_WITHIN));
    const c = Math.round(255 * (1 - t));
    return x >= 0 ? `rgb(255,${c},${c})` : `rgb(${c},${c},255)`;
  }

  function paintGrid() {
    const limit = Math.max(1e-9, ...D.records.map((r) => Math.abs(r.effects[state.mode].all[0])));
    for (const cell of grid.querySelectorAll("td")) {
      const r = record(+cell.dataset.layer, +cell.dataset.head);
      const [x, lo, hi] = r.effects[state.mode].all;
      cell.style.background = state.colour === "label" ? D.labelColours[r.label] : effectColour(x, limit);
      cell.classList.toggle("ex-significant", state.colour === "effect" && (lo > 0 || hi < 0));
      cell.classList.toggle("ex-dim", state.filter !== "" && r.label !== state.filter);
      cell.classList.toggle("ex-selected", r.layer === state.layer && r.head === state.head);
      cell.title = `${name(r.layer, r.head)}: ${r.label}; ${state.mode} ablation ${pct(x)} ${ci(lo, hi)}`;
    }
    const legend = $("ex-legend");
    legend.innerHTML = "";
    if (state.colour === "label") {
      for (const l of D.labels) {
        const item = el("span", { class: "ex-key" });
        item.append(el("span", { class: "ex-swatch", style: `background:${D.labelColours[l]}` }), ` ${l}`);
        legend.append(item);
      }
    } else {
      legend.textContent = `${state.mode} ablation: ${pct(-limit)} (blue) … 0 (white) … ${pct(limit)} (red), ` +
        `symmetric log scale, linear within ±${LINEAR_WITHIN}%`;
    }
  }

  function tableOf(id, header, rows) {
    const table = $(id);
    table.innerHTML = "";
    const tr = el("tr");
    for (const h of header) tr.append(el("th", {}, h));
    table.append(tr);
    for (const row of rows) {
      const r = el("tr");
      for (const c of row) r.append(el("td", {}, c));
      table.append(r);
    }
  }

  function paintNumbers(r) {
    $("ex-title").textContent = name(r.layer, r.head);
    $("ex-label").textContent = `Label: ${r.label} (from the ${D.labelView} view)`;
    const targets = D.targets.map((t) => `${t} [95% CI]`);
    tableOf("ex-effects", ["Ablation", "Test MSE increase [95% CI]", ...targets],
      Object.entries(r.effects).map(([m, e]) => [m, `${pct(e.all[0])} ${ci(e.all[1], e.all[2])}`,
        ...D.targets.map((t) => `${pct(e[t][0])} ${ci(e[t][1], e[t][2])}`)]));
    const f = (x) => (x === null ? "n/a" : x.toFixed(2));
    tableOf("ex-regions", [`Region (${D.labelView} view)`, "Enrichment", "95% CI", "Shuffle null", "Excess over null, 95% CI"],
      Object.entries(r.regions).map(([region, v]) => [region, f(v[0]), `[${f(v[1])}, ${f(v[2])}]`, f(v[3]), `[${f(v[4])}, ${f(v[5])}]`]));
    paintCausal(r.causal);
  }

  function paintCausal(c) {
    const yes = (b) => (b ? "yes" : "no");
    $("ex-verdicts").textContent = "Causal evidence: " + Object.entries(c.verdicts).map(([kind, v]) =>
      `${kind}: ` + Object.entries(v).map(([what, b]) => `${what} ${yes(b)}`).join(", ")).join("; ") +
      `; task-relevant (patching changes predictions): ${yes(c.taskRelevant)}`;
    const fixed = (x) => x.toFixed(3), small = (x) => x.toExponential(1);  // patching effects are often < 0.001 z
    const g = (v, f = fixed) => (v[0] === null ? "–" : `${f(v[0])} [${f(v[1])}, ${f(v[2])}]`);
    tableOf("ex-causal", ["Paired variant", "Distractor", "Output change at element [95% CI]", "Output change elsewhere",
      "Keys/values swapped: own output change",
      "Follow score", "Output patched: mean |Δ prediction| (z)", "Keys/values patched: mean |Δ prediction| (z)"],
      Object.entries(c.variants).map(([variant, m]) => [variant, m.distractor, g(m.sensitivity_element), g(m.sensitivity_elsewhere),
        g(m.kv_read), g(m.follow), g(m.patch_prediction_change, small), g(m.kv_prediction_change, small)]));
    $("ex-causal-note").textContent = `Output change: ||z_B − z_A|| at the changed element's patches over the head's typical ||z||. ` +
      D.causalRuleText;
  }

  const lut = D.magma.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  const logV = Math.log(D.vmax);
  const multiple = (code) => Math.exp((code / 255) * 2 * logV - logV);

  function paintScale() {
    const scale = $("ex-scale");
    scale.innerHTML = "";
    const bar = el("canvas", { width: 256, height: 10, class: "ex-bar" });
    const ctx = bar.getContext("2d");
    lut.forEach(([r, g, b], i) => { ctx.fillStyle = `rgb(${r},${g},${b})`; ctx.fillRect(i, 0, 1, 10); });
    scale.append(el("span", {}, `${(1 / D.vmax).toFixed(3)}×`), bar,
      el("span", {}, `${D.vmax.toFixed(1)}×  attention / uniform, log scale shared by every head, image and view (1× mid)`));
  }

  function paintMaps(r) {
    const view = D.views.find((v) => v.name === state.view);
    $("ex-view-note").textContent = view.reachesOutput ? `${view.title}.` :
      `${view.title}: this model's readout never reads the CLS token directly (later layers read it only as a key and value), so this view is shown for comparison.`;
    const holder = $("ex-maps");
    holder.innerHTML = "";
    const codes = maps[state.view], per = G * G;
    for (let i = 0; i < N_IMAGES; i++) {
      const offset = (((i * D.layers + (r.layer - 1)) * D.heads) + (r.head - 1)) * per;
      const figure = el("figure", { class: "ex-map" });
      const canvas = el("canvas", { width: 128, height: 128, "data-image": i });
      const ctx = canvas.getContext("2d");
      const heat = new ImageData(G, G);
      let peak = 0;
      for (let k = 0; k < per; k++) {
        const code = codes[offset + k];
        peak = Math.max(peak, code);
        const [red, green, blue] = lut[code];
        heat.data.set([red, green, blue, 179], 4 * k);  // alpha 0.7, as in the overlays figure
      }
      const tiny = el("canvas", { width: G, height: G });
      tiny.getContext("2d").putImageData(heat, 0, 0);
      const base = new Image();
      base.onload = () => {
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(base, 0, 0, 128, 128);
        ctx.drawImage(tiny, 0, 0, 128, 128);
        canvas.dataset.drawn = "1";
        for (const kind of state.outlines) {
          const line = new Image();
          line.onload = () => ctx.drawImage(line, 0, 0, 128, 128);
          line.src = D.outlines[kind][i];
        }
      };
      base.src = D.images[i];
      figure.append(canvas, el("figcaption", {}, `image ${i + 1}, max ${multiple(peak).toFixed(1)}×`));
      holder.append(figure);
    }
  }

  function select(l, h) {
    state.layer = Math.min(D.layers, Math.max(1, l));
    state.head = Math.min(D.heads, Math.max(1, h));
    const r = record(state.layer, state.head);
    paintGrid();
    paintNumbers(r);
    paintMaps(r);
  }

  grid.addEventListener("click", (event) => {
    const cell = event.target.closest("td");
    if (cell) select(+cell.dataset.layer, +cell.dataset.head);
  });
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(state.layer + moves[event.key][0], state.head + moves[event.key][1]);
  });
  for (const radio of root.querySelectorAll('input[name="ex-colour"]')) {
    radio.addEventListener("change", () => { state.colour = radio.value; paintGrid(); });
  }
  $("ex-mode").addEventListener("change", (e) => { state.mode = e.target.value; paintGrid(); });
  $("ex-filter").addEventListener("change", (e) => { state.filter = e.target.value; paintGrid(); });
  $("ex-view").addEventListener("change", (e) => { state.view = e.target.value; paintMaps(record(state.layer, state.head)); });
  $("ex-outline-toggles").addEventListener("change", (e) => {
    if (e.target.checked) state.outlines.add(e.target.dataset.kind); else state.outlines.delete(e.target.dataset.kind);
    paintMaps(record(state.layer, state.head));
  });
  $("ex-search").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    const match = /^\s*L(\d+)\s*H(\d+)\s*$/i.exec(e.target.value);
    const ok = match && +match[1] >= 1 && +match[1] <= D.layers && +match[2] >= 1 && +match[2] <= D.heads;
    $("ex-search-msg").textContent = ok ? "" : `no head ${e.target.value} (L1H1 … ${name(D.layers, D.heads)})`;
    if (ok) select(+match[1], +match[2]);
  });
  paintScale();
  const start = D.records.reduce((a, b) => (b.effects[state.mode].all[0] > a.effects[state.mode].all[0] ? b : a));
  select(start.layer, start.head);  // the head whose ablation hurts most
})();
