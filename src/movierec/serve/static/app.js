// The movierec page: talks only to this server's /api (no other origin, no library).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { board: null, ratings: new Map() };
const FLOORS = ["bias", "pop"];  // what every model must beat: the leaderboard marks them

async function api(path, options) {
  const answer = await fetch(path, options);
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.statusText);
  return body;
}

function say(text) { $("message").textContent = text || ""; }

function movieItem(movie, right, why) {
  const li = document.createElement("li");
  const title = document.createElement("button");
  title.className = "title";
  title.type = "button";
  title.textContent = movie.title;
  title.addEventListener("click", () => { showSimilar(movie); showWhy(why, movie); });
  li.appendChild(title);
  if (right) li.appendChild(right);
  return li;
}

function scoreSpan(text) {
  const span = document.createElement("span");
  span.className = "score";
  span.textContent = text;
  return span;
}

function column(heading, note) {
  const div = document.createElement("div");
  div.className = "column";
  const h = document.createElement("h3");
  h.textContent = heading;
  div.appendChild(h);
  if (note) div.appendChild(Object.assign(document.createElement("p"), { className: "muted", textContent: note }));
  const ol = document.createElement("ol");
  ol.className = "list";
  div.appendChild(ol);
  $("columns").appendChild(div);
  return ol;
}

function valNdcg(name) {
  const row = (state.board.models.find((m) => m.model === name) || {}).topn;
  const k = state.board.k;
  return row && row[`val_ndcg@${k}`] != null ? `val NDCG@${k} ${row[`val_ndcg@${k}`].toFixed(3)}` : "";
}

function pickedModels() {
  return [...document.querySelectorAll("#model-picks input:checked")].map((box) => box.value);
}

async function showUser(userId) {
  say("");
  $("columns").replaceChildren();
  // a link to this view: /?user=42&models=ease,bias
  const view = new URLSearchParams({ user: userId, models: pickedModels().join(",") });
  history.replaceState(null, "", `?${view}`);
  try {
    const history = await api(`/api/users/${encodeURIComponent(userId)}/history`);
    const list = column(`User ${userId}: rated`, `${history.ratings.length} ratings, best first`);
    for (const r of history.ratings.slice(0, 10)) list.appendChild(movieItem(r, scoreSpan(`${r.rating}★`)));
    for (const name of pickedModels()) {
      const recs = await api(`/api/users/${encodeURIComponent(userId)}/recommendations?k=10&model=${encodeURIComponent(name)}`);
      const ol = column(name, `${valNdcg(name)} · ${recs.score}`);
      const why = { userId, model: name };
      for (const r of recs.recommendations) ol.appendChild(movieItem(r, scoreSpan(String(r.score)), why));
    }
  } catch (err) { say(err.message); }
}

// "Because you rated": the user's ratings that add most to a recommendation, from the
// model that recommended it when it can tell (item-based), else from one that can.
async function showWhy(why, movie) {
  $("why").hidden = true;
  if (!why) return;
  const path = `/api/users/${encodeURIComponent(why.userId)}/explain?k=5&movie_id=${encodeURIComponent(movie.movie_id)}`;
  let answer;
  try {
    answer = await api(`${path}&model=${encodeURIComponent(why.model)}`);
  } catch (err) {
    try { answer = await api(path); } catch (again) { return; }  // no served model explains
  }
  $("why-title").textContent = `Why ${answer.model} scores ${movie.title}: you rated`;
  $("why-list").replaceChildren(...answer.because.map((m) => movieItem(m, scoreSpan(`${m.rating}★ · ${(100 * m.share).toFixed(0)}%`))));
  $("why").hidden = false;
  $("similar").scrollIntoView({ block: "start", behavior: "smooth" });
}

async function showSimilar(movie) {
  try {
    const near = await api(`/api/movies/${encodeURIComponent(movie.movie_id)}/similar?k=10`);
    $("similar").hidden = false;
    $("similar-title").textContent = `Like ${movie.title} (${near.model})`;
    $("similar-list").replaceChildren(...near.similar.map((m) => movieItem(m, scoreSpan(m.similarity.toFixed(2)))));
    $("similar").scrollIntoView({ block: "start", behavior: "smooth" });  // next to the click, in view
  } catch (err) { say(err.message); }
}

async function refreshNewcomer() {
  $("my-ratings").replaceChildren(...[...state.ratings.values()].map(({ movie, rating }) => movieItem(movie, scoreSpan(`${rating}★`))));
  $("columns").replaceChildren();
  if (!state.ratings.size) return;
  try {
    const ratings = [...state.ratings.values()].map(({ movie, rating }) => ({ movie_id: movie.movie_id, rating }));
    const recs = await api("/api/recommendations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ratings, k: 10 }),
    });
    const ol = column(`For you (${recs.model})`, `${state.ratings.size} ratings · ${recs.score}`);
    for (const r of recs.recommendations) ol.appendChild(movieItem(r, scoreSpan(String(r.score))));
    say("");
  } catch (err) { say(err.message); }
}

function stars(movie) {
  const span = document.createElement("span");
  span.className = "stars";
  for (const rating of [1, 3, 5]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${rating}★`;
    b.setAttribute("aria-label", `rate ${movie.title} ${rating}`);
    b.addEventListener("click", () => { state.ratings.set(movie.movie_id, { movie, rating }); refreshNewcomer(); });
    span.appendChild(b);
  }
  return span;
}

async function search(q) {
  try {
    const found = await api(`/api/movies/search?q=${encodeURIComponent(q)}`);
    $("search-results").replaceChildren(...found.movies.map((m) => movieItem(m, stars(m))));
    if (!found.movies.length) say(`no title contains "${q}"`);
  } catch (err) { say(err.message); }
}

async function start() {
  try {
    const [health, board] = await Promise.all([api("/api/health"), api("/api/models")]);
    state.board = board;
    $("dataset").textContent = `${health.dataset}: ${health.users} users, ${health.movies} movies, ${health.models.length} models`;
    const asked = new URLSearchParams(location.search);
    const picks = asked.get("models") ? asked.get("models").split(",") : [board.selected.topn, board.selected.rating];
    const order = [...picks, ...board.models.map((m) => m.model)].filter((m, i, all) => m && all.indexOf(m) === i && board.models.some((x) => x.model === m));
    order.forEach((name) => {
      const label = document.createElement("label");
      const box = Object.assign(document.createElement("input"), { type: "checkbox", value: name, checked: picks.includes(name) });
      label.append(box, ` ${name}`);
      $("model-picks").appendChild(label);
    });
    const k = board.k;
    const rows = board.models.map((m) => ({
      name: m.model,
      val: m.topn ? m.topn[`val_ndcg@${k}`] : null,
      test: m.topn ? m.topn[`ndcg@${k}`] : null,
      rmse: m.rating ? m.rating.rmse : null,
      tied: m.topn && m.topn.tied_with_best,
      stale: m.stale,
    })).sort((a, b) => (b.test ?? -1) - (a.test ?? -1));
    const fmt = (v) => (v == null ? "—" : v.toFixed(4));
    $("leaderboard").tBodies[0].replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      const floor = FLOORS.includes(r.name) ? " (floor)" : "";
      const mark = (r.name === board.selected.topn ? " ✓" : "") + (r.tied ? " ≈" : "") + floor + (r.stale ? " (stale)" : "");
      for (const text of [r.name + mark, fmt(r.val), fmt(r.test), fmt(r.rmse)]) {
        tr.appendChild(Object.assign(document.createElement("td"), { textContent: text }));
      }
      if (r.stale) { tr.title = r.stale; tr.classList.add("stale"); }
      return tr;
    }));
    const stale = Object.keys(board.stale || {});
    if (stale.length) say(`Leaderboard figures of ${stale.join(", ")} are stale (${board.stale[stale[0]]}); run dvc repro.`);
    if (asked.get("user")) { $("user-id").value = asked.get("user"); showUser(asked.get("user")); }
  } catch (err) { say(err.message); }
}

$("user-form").addEventListener("submit", (e) => { e.preventDefault(); $("newcomer").hidden = true; $("why").hidden = true; showUser($("user-id").value.trim()); });
$("new-user").addEventListener("click", () => { $("newcomer").hidden = false; $("why").hidden = true; $("search-q").focus(); refreshNewcomer(); });
$("search-form").addEventListener("submit", (e) => { e.preventDefault(); search($("search-q").value.trim()); });
start();
