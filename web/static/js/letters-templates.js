// Template editor: line numbers, live preview through the API, errors pointing at a line.
"use strict";
(function () {
  const form = document.getElementById("template-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const templates = JSON.parse($("tpl-data").textContent);
  const matter = $("tpl-matter");
  const source = $("tpl-source");
  const gutter = $("tpl-gutter");
  const title = $("tpl-title");
  const problem = $("tpl-problem");
  const saved = $("tpl-saved");
  const output = $("tpl-output");
  const lineLabel = $("tpl-messages").dataset.line;
  let timer = null;

  function numbers(bad) {
    const count = source.value.split("\n").length;
    const lines = [];
    for (let i = 1; i <= count; i++) lines.push(i === bad ? `▶${i}` : String(i));
    gutter.textContent = lines.join("\n");
  }
  function load() {
    const isNew = matter.value === "new";
    $("tpl-new-wrap").hidden = !isNew;
    const t = templates.find((x) => String(x.matter_id) === matter.value);
    title.value = t ? t.title : "";
    source.value = t ? t.source : (templates.length ? templates[0].source : "");
    numbers();
    preview();
  }
  function showProblem(p) {
    if (!p) {
      problem.hidden = true;
      numbers();
      return;
    }
    problem.textContent = (p.line ? lineLabel.replace("%(line)s", p.line) + ": " : "") + p.message;
    problem.hidden = false;
    numbers(p.line);
  }
  async function preview() {
    saved.hidden = true;
    try {
      const result = await window.yk.api("POST", "/api/v1/letter-templates/preview", { source: source.value });
      output.textContent = result.text || "";
      showProblem(result.problem);
    } catch (err) {
      showProblem({ line: null, message: err.message });
    }
  }
  source.addEventListener("input", () => {
    numbers();
    clearTimeout(timer);
    timer = setTimeout(preview, 400);
  });
  source.addEventListener("scroll", () => { gutter.scrollTop = source.scrollTop; });
  matter.addEventListener("change", load);
  $("tpl-preview").addEventListener("click", preview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = matter.value === "new" ? $("tpl-new-id").value.trim() : matter.value;
    try {
      await window.yk.api("PUT", `/api/v1/letter-templates/${encodeURIComponent(id)}`, {
        title: title.value, source: source.value,
      });
      showProblem(null);
      saved.hidden = false;
    } catch (err) {
      const details = err.data && err.data.error;
      showProblem({ line: details && details.details ? details.details.line : null, message: err.message });
    }
  });
  load();
})();
