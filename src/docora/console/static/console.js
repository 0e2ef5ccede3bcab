// Docora console: progressive enhancement only. Every page works without this file.
"use strict";

function setField(root, name, value) {
  root.querySelectorAll(`[data-field="${name}"]`).forEach((el) => { el.textContent = value; });
}

function flatten(prefix, value, out) {
  if (value !== null && typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) flatten(prefix ? `${prefix}.${key}` : key, inner, out);
  } else {
    out[prefix] = value;
  }
  return out;
}

// Live numbers: <div data-refresh="/api/admin/…" data-every="10"> with [data-field] inside.
function liveRefresh(root) {
  const url = root.dataset.refresh;
  const every = Number(root.dataset.every || 10) * 1000;
  const tick = async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const fields = flatten("", await response.json(), {});
      for (const [name, value] of Object.entries(fields)) {
        setField(root, name, name === "generated_at" ? new Date(value).toISOString().slice(11, 19) : value);
      }
    } catch (error) { /* offline for a moment: try again next tick */ }
  };
  setInterval(tick, every);
}

// A bulk operation's progress bar, polled until the operation ends.
function followOperation(root) {
  if (root.dataset.status !== "running") return;
  const bar = document.getElementById("progress");
  const tick = async () => {
    const response = await fetch(`/api/admin/operations/${root.dataset.operation}`, { credentials: "same-origin" });
    if (!response.ok) return;
    const op = await response.json();
    bar.max = Math.max(op.total, 1);
    bar.value = op.total ? op.completed : bar.max;
    for (const name of ["completed", "total", "succeeded", "failed"]) setField(root, name, op[name]);
    if (op.status !== "running") window.location.reload();
    else setTimeout(tick, 700);
  };
  setTimeout(tick, 700);
}

function copyButtons() {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "Copied";
      } catch (error) {
        button.textContent = "Select and copy";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(liveRefresh);
  document.querySelectorAll("[data-operation]").forEach(followOperation);
  copyButtons();
});
