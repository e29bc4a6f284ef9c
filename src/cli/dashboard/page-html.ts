// The page is plain HTML, CSS and one script (page-script.ts): no front-end build, and the
// TypeScript build carries it like the migrations' SQL.
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ckpt dashboard</title>
<style>
  :root { --bg: #f6f7f9; --card: #fff; --ink: #1d2430; --muted: #667085; --line: #e4e7ec; --ok: #12805c; --run: #1f6feb;
          --warn: #b54708; --bad: #c0262d; --bar: #d0d5dd; --done: #12805c; --flight: #84caff; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; align-items: baseline; gap: 16px; padding: 10px 20px; background: #101828; color: #fff; }
  header h1 { font-size: 16px; margin: 0; } header .muted { color: #98a2b3; }
  main { padding: 12px 20px 40px; display: grid; gap: 14px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; overflow-x: auto; }
  h2 { font-size: 14px; margin: 2px 0 8px; } h2 .muted { font-weight: normal; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
  th { font-weight: 600; color: var(--muted); font-size: 12px; }
  td.wrap { white-space: normal; word-break: break-word; max-width: 520px; }
  tr.selectable { cursor: pointer; } tr.selectable:hover, tr.selected { background: #eef4ff; }
  .muted { color: var(--muted); } .num { text-align: right; font-variant-numeric: tabular-nums; }
  code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  .badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; background: #eaecf0; color: #344054; }
  .badge.running { background: #dbeafe; color: var(--run); } .badge.completed { background: #d1fadf; color: var(--ok); }
  .badge.crashed, .badge.failed, .badge.dead { background: #fee4e2; color: var(--bad); }
  .badge.interrupted, .badge.lost, .badge.stalled, .badge.resumable, .badge.held { background: #fef0c7; color: var(--warn); }
  .bar { position: relative; width: 180px; height: 10px; background: var(--bar); border-radius: 5px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > span { position: absolute; top: 0; bottom: 0; left: 0; }
  .bar > .flight { background: var(--flight); } .bar > .done { background: var(--done); }
  .bar.big { width: 100%; height: 14px; border-radius: 7px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 10px; margin: 8px 0; }
  .card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
  .card .label { color: var(--muted); font-size: 12px; } .card .value { font-size: 16px; font-weight: 600; }
  .controls { display: flex; gap: 8px; align-items: center; margin: 6px 0; flex-wrap: wrap; }
  input, select, button { font: inherit; padding: 2px 6px; }
  .commands { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }
  .commands code { user-select: all; background: #f2f4f7; padding: 1px 6px; border-radius: 4px; }
  #error { display: none; background: #fee4e2; color: var(--bad); padding: 8px 14px; border-radius: 6px; }
  .note { color: var(--muted); font-size: 12px; margin: 4px 0; }
</style>
</head>
<body>
<header><h1>ckpt dashboard</h1><span class="muted" id="store"></span><span class="muted" id="refreshed"></span></header>
<main>
  <div id="error"></div>
  <section><h2>Job instances <span class="muted">(newest first; read-only, refreshed every second)</span></h2><div id="instances">loading…</div></section>
  <div id="detail" hidden>
    <section>
      <h2 id="title"></h2>
      <div id="summary"></div>
    </section>
    <section style="margin-top:14px">
      <h2>Shards <span class="muted" id="shard-count"></span></h2>
      <div class="controls">
        <label>status <select id="status-filter"><option value="all">all</option><option>running</option><option>pending</option><option>completed</option></select></label>
        <label>name <input id="search" placeholder="contains…" size="16"></label>
        <button id="prev" type="button">‹ prev</button><span id="page-label" class="muted"></span><button id="next" type="button">next ›</button>
      </div>
      <div id="shards"></div>
    </section>
    <section style="margin-top:14px"><h2>Runs <span class="muted" id="run-count"></span></h2>
      <p class="note">A run whose worker died stays <em>running</em> in the store until a worker (or <code>ckpt status</code>) reaps it and records it <em>crashed</em>; meanwhile it is shown as <span class="badge dead">dead</span> with the reason.</p>
      <div id="runs"></div></section>
    <section style="margin-top:14px"><h2>Dead letters <span class="muted" id="dlq-count"></span></h2><div id="dead-letters"></div></section>
    <section style="margin-top:14px"><h2>Event log <span class="muted">(newest first)</span></h2><div id="events"></div></section>
    <section style="margin-top:14px"><h2>Commands <span class="muted">(the page changes nothing: copy and run these where the job runs)</span></h2><div id="commands" class="commands"></div></section>
  </div>
</main>
<script src="/app.js"></script>
</body>
</html>
`;
