"""The preview gallery's page template and stylesheet (see preview.py)."""

from __future__ import annotations

GALLERY_HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<link rel="stylesheet" href="assets/gallery.css">
</head>
<body>
<header class="page">
  <h1>{{ title }}</h1>
  <p class="totals">{{ totals.templates }} templates &middot; {{ totals.approved }} approved
    &middot; {{ totals.errors }} lint errors &middot; {{ totals.warnings }} lint warnings</p>
  <p class="about">Each template is rendered with fictional sample accounts of its tier: a
    typical sending day and the tier's last day, where amounts and day counts are longest (the
    same accounts <code>dunning templates lint</code> checks). Approval status and lint findings
    are as of when this gallery was built.</p>
{% if not thumbnails %}
  <p class="notice">Letter thumbnails need <code>pdftoppm</code> (poppler-utils), which is not
    installed here: the letters are linked as PDF files only.</p>
{% endif %}
  <table class="overview">
    <thead>
      <tr><th>Template</th><th>Purpose</th><th>Jurisdiction</th><th>Approval</th><th>Lint</th></tr>
    </thead>
    <tbody>
{% for card in cards %}
      <tr>
        <td><a href="#{{ card.anchor }}">{{ card.ref.id }}</a></td>
        <td>{{ card.meta.purpose.value }}</td>
        <td>{{ card.meta.jurisdiction }}</td>
        <td><span class="badge {{ card.status.state | replace(' ', '-') }}">
          {{- card.status.state }}</span></td>
        <td>
{% if card.errors %}
          <span class="badge error">{{ card.errors }} error{{ 's' if card.errors != 1 }}</span>
{% endif %}
{% if card.warnings %}
          <span class="badge warning">
            {{- card.warnings }} warning{{ 's' if card.warnings != 1 }}</span>
{% endif %}
{% if not card.findings %}
          <span class="badge clean">clean</span>
{% endif %}
        </td>
      </tr>
{% endfor %}
    </tbody>
  </table>
</header>
<main>
{% for section in sections %}
<section class="channel" id="{{ section.id }}">
  <h2>{{ section.title }}</h2>
{% for card in section.cards %}
  <article class="template" id="{{ card.anchor }}">
    <header>
      <h3>{{ card.ref.id }}</h3>
      <p class="meta">{{ card.channel.value }} &middot; tier {{ card.ref.tier }} &middot;
        {{ card.ref.locale }} &middot; {{ card.meta.jurisdiction }} &middot;
        purpose {{ card.meta.purpose.value }} &middot; hash
        <code title="{{ card.ref.content_hash }}">{{ card.ref.content_hash[:12] }}</code></p>
      <p class="variables">Variables:
{% for variable in card.meta.variables %}
        <code>{{ variable }}</code>{{ ',' if not loop.last }}
{% endfor %}
      </p>
    </header>
    <div class="columns">
      <div class="samples">
{% if card.render_error %}
        <p class="render-error">Does not render: {{ card.render_error }}</p>
{% endif %}
{% for sample in card.samples %}
{% if card.channel.value == 'sms' %}
        <figure class="phone sms">
          <div class="sender">{{ sample.lender }}</div>
          <div class="bubble">{{ sample.text }}</div>
          <figcaption>DPD {{ sample.dpd }} &middot; {{ sample.length.encoding }} &middot;
            {{ sample.length.segments }} part{{ 's' if sample.length.segments != 1 }} &middot;
            {{ sample.length.characters }} characters</figcaption>
        </figure>
{% elif card.channel.value == 'push' %}
        <figure class="phone lock">
          <div class="clock">9:41</div>
          <div class="day">Monday, June 16</div>
          <div class="notification">
            <div class="app"><span class="icon">{{ sample.lender[:1] }}</span>
              <span class="app-name">{{ sample.lender }}</span><span class="when">now</span></div>
            <div class="n-title">{{ sample.title }}</div>
            <div class="n-body">{{ sample.text }}</div>
          </div>
          <figcaption>DPD {{ sample.dpd }} &middot;
            payload {{ sample.payload_bytes }} bytes</figcaption>
        </figure>
{% else %}
        <figure class="letter">
          <a href="{{ sample.pdf }}">
{% if sample.png %}
            <img src="{{ sample.png }}" alt="Page 1 of {{ card.ref.id }} at DPD {{ sample.dpd }}">
{% else %}
            <span class="no-thumbnail">PDF</span>
{% endif %}
          </a>
          <figcaption>DPD {{ sample.dpd }} &middot; <a href="{{ sample.pdf }}">PDF</a>
            ({{ sample.pdf_kb }} KB)
{% if sample.thumbnail_error %}
            &middot; {{ sample.thumbnail_error }}
{% endif %}
          </figcaption>
        </figure>
{% endif %}
{% endfor %}
      </div>
      <aside class="review">
        <h4>Approval</h4>
{% set status = card.status %}
{% if status.state == 'never approved' %}
        <p><span class="badge never-approved">never approved</span> Dispatch holds its messages
          (template_unapproved) until it is approved.</p>
{% else %}
        <p><span class="badge {{ status.state }}">{{ status.state }}</span>
          by {{ status.approval.reviewer }} on
          {{ status.approval.approved_at.strftime('%Y-%m-%d %H:%M') }} UTC
{% if status.approval.forced %}
          <span class="badge error">forced over
            {{ status.approval.lint_errors | join(', ') }}</span>
{% endif %}
        </p>
{% if status.approval.note %}
        <p class="note">{{ status.approval.note }}</p>
{% endif %}
{% if status.state == 'changed' %}
        <p>Changed since approval: dispatch holds its messages (template_unapproved) until it is
          approved again.</p>
        <details open>
          <summary>Changes since approval</summary>
          <pre class="diff">
{%- for line in status.diff.splitlines() %}
{% set kind = {'+': 'add', '-': 'del', '@': 'hunk'}.get(line[:1], '') %}
<span class="{{ kind }}">{{ line }}</span>
{% endfor %}</pre>
        </details>
{% endif %}
{% endif %}
        <h4>Lint</h4>
{% if card.findings %}
        <ul class="findings">
{% for finding in card.findings %}
          <li class="{{ finding.severity }}">
            <span class="badge {{ finding.severity }}">{{ finding.severity }}</span>
            <code>{{ finding.rule }}</code> line {{ finding.line }}: {{ finding.message }}</li>
{% endfor %}
        </ul>
{% else %}
        <p class="clean">No findings.</p>
{% endif %}
      </aside>
    </div>
  </article>
{% endfor %}
</section>
{% endfor %}
</main>
</body>
</html>
"""

GALLERY_CSS = """\
:root {
  --ink: #1c2430;
  --muted: #5b6776;
  --line: #d9dee5;
  --paper: #f5f7fa;
  --ok: #1f7a4d;
  --warn: #a15c00;
  --bad: #b3261e;
}

* { box-sizing: border-box; }

body {
  margin: 0;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "PingFang SC",
    "Microsoft YaHei", sans-serif;
  color: var(--ink);
  background: var(--paper);
}

header.page, main { max-width: 1200px; margin: 0 auto; padding: 24px; }
header.page h1 { margin: 0 0 4px; }
.totals { font-weight: 600; margin: 0 0 8px; }
.about, .meta, .variables { color: var(--muted); }
.notice { background: #fff4e0; border: 1px solid #f0c078; padding: 8px 12px; border-radius: 6px; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }

table.overview { width: 100%; border-collapse: collapse; background: #fff; margin-top: 12px; }
table.overview th, table.overview td {
  text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
}

.badge {
  display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; color: #fff; background: var(--muted);
}
.badge.approved, .badge.clean { background: var(--ok); }
.badge.changed, .badge.warning { background: var(--warn); }
.badge.never-approved, .badge.error { background: var(--bad); }

section.channel h2 { border-bottom: 2px solid var(--ink); padding-bottom: 4px; }
article.template {
  background: #fff; border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 20px; margin: 0 0 24px;
}
article.template h3 { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; }
article.template .meta, article.template .variables { margin: 4px 0; font-size: 13px; }
.columns { display: flex; gap: 24px; flex-wrap: wrap; margin-top: 12px; }
.samples { flex: 3 1 520px; display: flex; gap: 20px; flex-wrap: wrap; align-items: flex-start; }
.review { flex: 2 1 320px; min-width: 0; }
.review h4 { margin: 0 0 6px; }
.review h4 + * { margin-top: 0; }
.review p, .review ul { font-size: 14px; }
.note { font-style: italic; }
.findings { padding-left: 0; list-style: none; }
.findings li { margin-bottom: 6px; }
.clean { color: var(--ok); }
.render-error { color: var(--bad); font-weight: 600; }
pre.diff {
  font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; background: #fbfbfb;
  border: 1px solid var(--line); padding: 8px; overflow: auto; max-height: 420px;
}
pre.diff .add { color: #116329; background: #e6ffec; }
pre.diff .del { color: #82071e; background: #ffebe9; }
pre.diff .hunk { color: #6e40c9; }

figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 8px; text-align: center; }

.phone {
  width: 280px; border-radius: 34px; padding: 18px 14px 14px; border: 6px solid #20252c;
  box-shadow: 0 6px 20px rgba(0, 0, 0, 0.15);
}
.phone.sms { background: #fff; min-height: 360px; }
.phone.sms .sender {
  text-align: center; font-size: 13px; font-weight: 600; padding-bottom: 8px;
  border-bottom: 1px solid var(--line); margin-bottom: 12px;
}
.phone.sms .bubble {
  background: #e9e9eb; border-radius: 18px 18px 18px 4px; padding: 9px 13px;
  font-size: 14px; white-space: pre-wrap; overflow-wrap: anywhere;
}
.phone.lock {
  min-height: 360px; color: #fff;
  background: linear-gradient(160deg, #27436b 0%, #4b2f63 55%, #a4506a 100%);
}
.phone.lock .clock { text-align: center; font-size: 54px; font-weight: 300; margin-top: 14px; }
.phone.lock .day { text-align: center; font-size: 14px; margin-bottom: 26px; }
.notification {
  background: rgba(255, 255, 255, 0.82); color: #111; border-radius: 16px;
  padding: 10px 12px; font-size: 13px;
}
.notification .app { display: flex; align-items: center; gap: 6px; color: #555; font-size: 12px; }
.notification .icon {
  width: 18px; height: 18px; border-radius: 5px; background: #1d3557; color: #fff;
  font-size: 11px; font-weight: 700; display: inline-flex; align-items: center;
  justify-content: center;
}
.notification .app-name { flex: 1; text-transform: uppercase; letter-spacing: 0.02em; }
.notification .n-title { font-weight: 600; margin-top: 4px; }
.phone.lock figcaption { color: #eee; }

.letter img, .letter .no-thumbnail {
  display: block; width: 240px; border: 1px solid var(--line);
  box-shadow: 0 4px 14px rgba(0, 0, 0, 0.12); background: #fff;
}
.letter .no-thumbnail {
  height: 340px; display: flex; align-items: center; justify-content: center;
  font-size: 28px; color: var(--muted); text-decoration: none;
}
"""
