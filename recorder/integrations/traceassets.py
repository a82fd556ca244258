"""The style sheet and the script of the run browser (:mod:`.tracehtml`).

Both are scoped to one viewer: every CSS selector starts with the viewer's root id, and
the script (an IIFE, strict mode) finds its root from ``document.currentScript``, sets
nothing global and listens on the root only. It loads nothing, evaluates no text (its
data is read with ``JSON.parse``) and builds its controls with DOM calls, so no data
is ever parsed as HTML. Colours read on light and dark themes: solid badges with white
text, translucent tints, and JupyterLab's ``--jp-*`` variables where they exist.
"""

from __future__ import annotations

__all__ = ["OUTCOME_COLOURS", "STATUS_COLOURS", "script", "style"]

OUTCOME_COLOURS = {
    "completed": "#1a7f37",
    "failed": "#cf222e",
    "interrupted": "#9a6700",
    "suspended": "#0969da",
    "crashed": "#86061d",
    "damaged": "#86061d",
    "running": "#6e7781",
    "new": "#6e7781",
}
"""Attempt (and run) outcomes: green, red, amber, blue, dark red, grey."""
STATUS_COLOURS = {
    "replayed": "#6639ba",
    "live": "#1a7f37",
    "failed": "#cf222e",
    "other": "#6e7781",
}
"""Step call statuses: replayed (from the record) purple, live green, failed red."""

_CSS = r"""
#R{--rv-border:var(--jp-border-color2,rgba(127,127,127,.32));--rv-tint:rgba(127,127,127,.07);
--rv-zebra:rgba(127,127,127,.045);--rv-hover:rgba(127,127,127,.14);
--rv-sel:rgba(56,139,253,.16);--rv-accent:var(--jp-brand-color1,#388bfd);
--rv-code:rgba(127,127,127,.10);--rv-red:#e5534b;
font-family:var(--jp-ui-font-family,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);
color:var(--jp-ui-font-color1,inherit);outline:none;margin:2px 0 8px}
#R *{box-sizing:border-box}
#R code,#R pre,#R .rv-mono{font-family:var(--jp-code-font-family,ui-monospace,SFMono-Regular,
Menlo,Consolas,monospace);font-size:12px}
#R .rv-muted{opacity:.66}
#R .rv-head{padding:8px 12px;border:1px solid var(--rv-border);border-radius:8px;
background:var(--rv-tint);margin-bottom:8px}
#R .rv-title{font-size:15px;margin-bottom:2px}
#R .rv-title .rv-badge{font-size:12px;vertical-align:1px}
#R .rv-runid{font-size:12px}
#R .rv-inputs{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;margin-bottom:3px}
#R .rv-stat{white-space:nowrap}
#R .rv-stat b{font-variant-numeric:tabular-nums}
#R .rv-note{margin:6px 2px;opacity:.8}
#R .rv-badge{display:inline-block;font-size:11px;line-height:17px;font-weight:600;
letter-spacing:.02em}
#R summary{cursor:pointer;list-style:none}
#R summary::-webkit-details-marker{display:none}
#R summary::marker{content:""}
#R .rv-caret{display:inline-block;width:15px;opacity:.55;font-size:0}
#R .rv-caret:before{content:"\25B8";font-size:12px}
#R details[open]>summary .rv-caret:before{content:"\25BE"}
#R details.rv-attempt{border:1px solid var(--rv-border);border-radius:8px;margin:8px 0;
overflow:hidden}
#R .rv-attempt-head{padding:7px 12px;background:var(--rv-tint)}
#R .rv-attempt-head b{margin-right:4px}
#R details.rv-attempt[open]>.rv-attempt-head{border-bottom:1px solid var(--rv-border)}
#R .rv-attempt-error{color:var(--rv-red);font-family:var(--jp-code-font-family,ui-monospace,
monospace);font-size:12px;margin:3px 0 0 1.1em;overflow:hidden;text-overflow:ellipsis;
white-space:nowrap}
#R .rv-row{padding:4px 12px;min-height:26px}
#R .rv-row>span{min-width:0}
#R .rv-headrow{border-bottom:1px solid var(--rv-border)}
#R .rv-headrow>span{font-size:11px;font-weight:600;text-transform:uppercase;
letter-spacing:.05em;opacity:.7}
#R .rv-headrow>span:nth-child(6),#R .rv-headrow>span:nth-child(7){text-align:right}
#R details.rv-step:nth-of-type(even)>summary{background:var(--rv-zebra)}
#R details.rv-step>summary:hover{background:var(--rv-hover)}
#R details.rv-step[open]>summary{background:var(--rv-sel)}
#R details.rv-step.rv-sel>summary{box-shadow:inset 3px 0 0 var(--rv-accent);
background:var(--rv-sel)}
#R details.rv-failed-row>summary .rv-name{color:var(--rv-red)}
#R .rv-row-error{font-family:var(--jp-code-font-family,ui-monospace,monospace);font-size:12px;
opacity:.9}
#R .rv-seq{font-variant-numeric:tabular-nums;white-space:nowrap}
#R .rv-ell{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
#R .rv-num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#R .rv-saved{opacity:.55}
#R .rv-kind{opacity:.8}
#R .rv-detail{padding:6px 14px 12px 2.6em;border-bottom:1px solid var(--rv-border);
border-top:1px dashed var(--rv-border)}
#R .rv-section{margin:8px 0 4px}
#R .rv-label{font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.05em;
opacity:.6;margin-bottom:4px}
#R .rv-kv{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 14px;margin:0}
#R .rv-kv dt{opacity:.65}
#R .rv-kv dd{margin:0;min-width:0;overflow-wrap:anywhere}
#R .rv-key{word-break:break-all}
#R .rv-pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:3px 0;max-height:380px;
overflow:auto;padding:6px 9px;border-radius:5px;background:var(--rv-code);line-height:1.4}
#R .rv-chat{display:flex;flex-direction:column;gap:6px;max-width:1000px}
#R .rv-msg{--c:#8c959f;border-left:3px solid var(--c);border-radius:0 6px 6px 0;
padding:5px 10px 6px;background:rgba(140,149,159,.10)}
#R .rv-role-user{--c:#388bfd;background:rgba(56,139,253,.09)}
#R .rv-role-assistant{--c:#2ea043;background:rgba(46,160,67,.09)}
#R .rv-role-tool{--c:#d29922;background:rgba(210,153,34,.10)}
#R .rv-role-system{--c:#8c959f}
#R .rv-who{font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.05em;
color:var(--c);margin-bottom:2px}
#R .rv-text{white-space:pre-wrap;overflow-wrap:anywhere}
#R .rv-call{margin-top:4px}
#R .rv-fn{font-family:var(--jp-code-font-family,ui-monospace,monospace);font-weight:700}
#R .rv-args{max-height:240px}
#R details.rv-earlier>summary,#R details.rv-trace>summary,#R details.rv-tools>summary{
opacity:.7;font-size:12px;padding:2px 0}
#R details.rv-earlier>summary:before,#R details.rv-trace>summary:before,
#R details.rv-tools>summary:before{content:"▸ "}
#R details.rv-earlier[open]>summary:before,#R details.rv-trace[open]>summary:before,
#R details.rv-tools[open]>summary:before{content:"▾ "}
#R details.rv-earlier[open]{display:flex;flex-direction:column;gap:6px}
#R .rv-shot{display:block;max-width:100%;height:auto;border:1px solid var(--rv-border);
border-radius:4px;cursor:zoom-in;margin-top:2px}
#R .rv-error{border-left:3px solid var(--rv-red);background:rgba(229,83,75,.09);
padding:5px 10px;border-radius:0 6px 6px 0;margin:6px 0}
#R .rv-error>b{color:var(--rv-red);font-family:var(--jp-code-font-family,ui-monospace,
monospace);font-size:12px;overflow-wrap:anywhere}
#R .rv-damaged{color:var(--rv-red)}
#R .rv-toolbar{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:4px 0 6px}
#R .rv-toolbar input{font:inherit;padding:3px 8px;min-width:24em;border-radius:6px;
border:1px solid var(--rv-border);background:transparent;color:inherit}
#R .rv-toolbar button{font:inherit;font-size:12px;padding:1px 9px;border-radius:12px;
border:1px solid var(--rv-border);background:transparent;color:inherit;cursor:pointer}
#R .rv-toolbar button.rv-on{background:var(--rv-sel);border-color:var(--rv-accent)}
#R .rv-count,#R .rv-keys{font-size:12px;opacity:.66}
#R .rv-keys{margin-left:auto}
#R .rv-keys kbd{font-family:inherit;border:1px solid var(--rv-border);border-radius:3px;
padding:0 4px}
#R .rv-hidden{display:none!important}
#R dialog.rv-overlay{padding:0;border:0;max-width:98vw;max-height:98vh;overflow:auto;
background:#0d1117;color:#e6edf3;border-radius:6px}
#R dialog.rv-overlay::backdrop{background:rgba(0,0,0,.78)}
#R dialog.rv-overlay img{display:block;max-width:none;height:auto}
#R .rv-overlay-bar{position:sticky;top:0;left:0;display:flex;justify-content:space-between;
gap:12px;padding:4px 10px;background:#161b22;font-size:12px}
#R .rv-overlay-bar button{font:inherit;background:transparent;color:inherit;border:0;
cursor:pointer;font-size:16px;line-height:1}
"""

_JS = r"""
(function () {
  "use strict";
  function init(root) {
    if (!root || root.getAttribute("data-rv-ready")) return;
    root.setAttribute("data-rv-ready", "1");
    var source = root.querySelector("script.rv-data");
    var data;
    try { data = JSON.parse(source ? source.textContent : "{}"); } catch (err) { return; }
    var byId = {};
    (data.rows || []).forEach(function (r) { byId[r.id] = r; });
    var steps = Array.prototype.slice.call(root.querySelectorAll("details.rv-step"));
    var groups = Array.prototype.slice.call(root.querySelectorAll("details.rv-attempt"));
    var selected = null;
    var dialog = null, big = null, caption = null;

    function el(tag, cls, text) {
      var node = document.createElement(tag);
      if (cls) node.className = cls;
      if (text) node.textContent = text;
      return node;
    }
    function groupOf(step) { return step.parentNode.closest("details.rv-attempt"); }
    function visible(step) {
      var group = groupOf(step);
      return !step.classList.contains("rv-hidden") && (!group || group.open);
    }
    function select(step) {
      if (selected) selected.classList.remove("rv-sel");
      selected = step;
      if (!step) return;
      step.classList.add("rv-sel");
      var group = groupOf(step);
      if (group && !group.open) group.open = true;
      step.firstElementChild.scrollIntoView({block: "nearest"});
    }
    function move(by) {
      var list = steps.filter(visible);
      if (!list.length) return;
      var at = list.indexOf(selected);
      if (at < 0) at = by > 0 ? 0 : list.length - 1;
      else at = Math.max(0, Math.min(list.length - 1, at + by));
      select(list[at]);
    }
    function toggle() {
      if (!selected) { move(1); return; }
      selected.open = !selected.open;
      if (selected.open) selected.scrollIntoView({block: "nearest"});
    }
    function jump(by) {
      if (!groups.length) return;
      var at = groups.indexOf(selected ? groupOf(selected) : groups[groups.length - 1]);
      var next = groups[Math.max(0, Math.min(groups.length - 1, at + by))];
      next.open = true;
      var first = steps.filter(function (s) { return groupOf(s) === next && visible(s); })[0];
      if (first) select(first); else next.firstElementChild.scrollIntoView({block: "nearest"});
    }

    function overlay(src, text) {
      if (!dialog) {
        dialog = el("dialog", "rv-overlay");
        if (typeof dialog.showModal !== "function") { dialog = null; return; }
        var bar = el("div", "rv-overlay-bar");
        caption = el("span", "rv-caption");
        var close = el("button", "rv-close", "\u00d7");
        close.type = "button";
        close.title = "close (Escape)";
        close.addEventListener("click", function () { dialog.close(); });
        bar.appendChild(caption);
        bar.appendChild(close);
        big = el("img", "rv-big");
        big.alt = "screenshot at its natural size";
        dialog.appendChild(bar);
        dialog.appendChild(big);
        dialog.addEventListener("click", function (e) { if (e.target === dialog) dialog.close(); });
        dialog.addEventListener("close", function () { root.focus({preventScroll: true}); });
        root.appendChild(dialog);
      }
      big.src = src;
      caption.textContent = text;
      dialog.showModal();
    }
    function shotOf(step) { return step ? step.querySelector("img.rv-shot") : null; }
    function caption_of(step) {
      var r = byId[step.getAttribute("data-row")] || {};
      return "attempt " + r.attempt + " \u00b7 step #" + r.seq + " \u00b7 Escape closes";
    }

    // the filter bar, built with DOM calls only
    var bar = root.querySelector(".rv-toolbar");
    var input = el("input");
    input.type = "search";
    input.placeholder = "filter: text, failed, status:live, kind:llm, #12";
    input.setAttribute("aria-label", "filter step calls");
    var count = el("span", "rv-count");
    var chips = [];
    bar.appendChild(input);
    var seen = {};
    (data.rows || []).forEach(function (r) { seen[r.status] = (seen[r.status] || 0) + 1; });
    ["failed", "live", "replayed"].forEach(function (status) {
      if (!seen[status]) return;
      var chip = el("button", "rv-chip", status + " " + seen[status]);
      chip.type = "button";
      chip.setAttribute("data-term", "status:" + status);
      chip.addEventListener("click", function () {
        var term = chip.getAttribute("data-term");
        input.value = input.value.trim() === term ? "" : term;
        apply();
      });
      chips.push(chip);
      bar.appendChild(chip);
    });
    bar.appendChild(count);
    var keys = el("span", "rv-keys");
    [["j", "k"], ["Enter"], ["[", "]"], ["/"]].forEach(function (group, i) {
      group.forEach(function (k) { keys.appendChild(el("kbd", "", k)); });
      keys.appendChild(document.createTextNode(
        [" move  ", " open  ", " attempts  ", " filter"][i]));
    });
    bar.appendChild(keys);
    bar.hidden = false;

    function matches(r, term) {
      var m = /^(status|kind|attempt|is):(.*)$/.exec(term);
      if (m) return String(r[m[1] === "is" ? "status" : m[1]]).indexOf(m[2]) === 0;
      if (term.charAt(0) === "#") return String(r.seq) === term.slice(1);
      return r.status === term || r.kind === term || r.text.indexOf(term) >= 0;
    }
    function apply() {
      var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      steps.forEach(function (step) {
        var r = byId[step.getAttribute("data-row")];
        var ok = !!r && terms.every(function (t) { return matches(r, t); });
        step.classList.toggle("rv-hidden", !ok);
        if (ok) shown += 1;
      });
      chips.forEach(function (chip) {
        chip.classList.toggle("rv-on", input.value.trim() === chip.getAttribute("data-term"));
      });
      count.textContent = terms.length ? shown + " of " + steps.length + " step calls" : "";
      if (selected && !visible(selected)) select(null);
    }
    input.addEventListener("input", apply);

    root.addEventListener("click", function (e) {
      var target = e.target;
      var ref = target.closest ? target.closest("a.rv-shot-ref") : null;
      if (ref) {
        var other = root.querySelector("[data-row='" + ref.getAttribute("data-ref") + "']");
        var img = shotOf(other);
        if (img) { e.preventDefault(); overlay(img.src, caption_of(other)); }
        return;
      }
      if (target.tagName === "IMG" && target.classList.contains("rv-shot")) {
        var owner = target.closest("details.rv-step");
        overlay(target.src, owner ? caption_of(owner) : "Escape closes");
        return;
      }
      var summary = target.closest ? target.closest("summary") : null;
      if (summary && summary.parentNode.classList.contains("rv-step")) {
        select(summary.parentNode);
        root.focus({preventScroll: true});
      }
    });
    root.addEventListener("keydown", function (e) {
      if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
      var target = e.target;
      if (dialog && dialog.open) return;
      if (target === input) {
        if (e.key === "Escape") { input.value = ""; apply(); root.focus(); }
        else if (e.key === "Enter" || e.key === "ArrowDown") {
          root.focus();
          select(null);
          move(1);
        }
        else return;
        e.preventDefault();
        e.stopPropagation();
        return;
      }
      if (/^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName)) return;
      if (target.isContentEditable) return;
      var key = e.key;
      if (key === "j" || key === "ArrowDown") move(1);
      else if (key === "k" || key === "ArrowUp") move(-1);
      else if (key === "Enter" || key === " ") toggle();
      else if (key === "]") jump(1);
      else if (key === "[") jump(-1);
      else if (key === "/") input.focus();
      else if (key === "v" && shotOf(selected)) overlay(shotOf(selected).src, caption_of(selected));
      else if (key === "Escape" && selected && selected.open) selected.open = false;
      else return;
      e.preventDefault();
      e.stopPropagation();
    });
  }
  var me = document.currentScript;
  var root = me && me.closest ? me.closest(".recorder-viewer") : null;
  if (root) init(root);
  else Array.prototype.forEach.call(document.querySelectorAll(".recorder-viewer"), init);
})();
"""


def style(root_id: str) -> str:
    """The ``<style>`` element of the viewer whose root has id ``root_id``."""
    css = " ".join(line.strip() for line in _CSS.strip().splitlines())
    return f"<style>{css.replace('#R', '#' + root_id)}</style>"


def script() -> str:
    """The viewer's ``<script>`` (it finds its root itself)."""
    return f"<script>{_JS.strip()}</script>"
