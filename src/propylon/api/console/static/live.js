// The live tail of a running interaction: its event stream (server-sent events) drawn as
// steps. When the connection drops, it is opened again with `last_event_id` set to the last
// event shown, and the server resumes after that event. On the terminal event the
// server-rendered timeline replaces the live one.
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const list = document.getElementById("live-steps");
  const status = document.getElementById("status");
  const note = document.getElementById("live-note");
  const first = Number(live.dataset.first);
  const steps = new Map();

  function setStatus(value) {
    status.textContent = value;
    status.className = "status status-" + value;
  }

  function addStep(index, step) {
    const item = document.createElement("li");
    item.className = "step step-" + step.type;
    item.dataset.stepType = step.type;
    const title = document.createElement("div");
    title.className = "step-title";
    const number = document.createElement("span");
    number.className = "step-n";
    number.textContent = String(first + index);
    const name = document.createElement("strong");
    name.textContent = step.type + (step.name ? " " + step.name : "");
    title.append(number, " ", name);
    const body = document.createElement("pre");
    body.className = "live-text";
    const initial = step.content || step.summary || [];
    body.textContent = initial.map((c) => c.text || "").join("");
    if (step.arguments) body.textContent = JSON.stringify(step.arguments, null, 2);
    item.append(title, body);
    list.append(item);
    steps.set(index, body);
  }

  function addDelta(index, delta) {
    const body = steps.get(index);
    if (!body) return;
    if (delta.hidden) body.textContent = "[hidden: console_content is off]";
    else if (delta.type === "text") body.textContent += delta.text;
    else if (delta.type === "thought_summary") body.textContent += (delta.content || {}).text || "";
    else if (delta.type === "arguments_delta") body.textContent += delta.arguments || "";
    else body.textContent += JSON.stringify(delta) + "\n";
  }

  let lastEventId = "";
  let source = null;

  function connect() {
    const url = new URL(live.dataset.events, location.href);
    if (lastEventId) url.searchParams.set("last_event_id", lastEventId);
    source = new EventSource(url);
    const on = (type, handle) =>
      source.addEventListener(type, (event) => {
        if (event.lastEventId) lastEventId = event.lastEventId;
        handle(JSON.parse(event.data));
      });
    on("interaction.created", (data) => setStatus(data.interaction.status));
    on("interaction.status_update", (data) => setStatus(data.status));
    on("step.start", (data) => addStep(data.index, data.step));
    on("step.delta", (data) => addDelta(data.index, data.delta));
    on("interaction.completed", (data) => {
      source.close();
      setStatus(data.interaction.status);
      note.textContent = "Ended: " + data.interaction.status + ".";
      htmx.ajax("GET", live.dataset.timeline, { target: "#interaction", swap: "outerHTML" });
    });
    source.addEventListener("error", (event) => {
      if (event.data) {  // an `error` event of the log, not a dropped connection
        note.textContent = "Error: " + (JSON.parse(event.data).error || {}).message;
        return;
      }
      // The connection dropped: open it again after the last event shown, as an API
      // client resumes with `last_event_id`.
      source.close();
      note.textContent = "Connection dropped: resuming after the last event…";
      setTimeout(connect, 1000);
    });
    source.addEventListener("message", (event) => {
      if (event.data === "[DONE]") source.close();
    });
  }

  connect();
})();
