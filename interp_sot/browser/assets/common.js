"use strict";
function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function num(v) {
  if (v === null || v === undefined) return "";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  return String(Number(v.toPrecision(4)));
}
function fmt(v, kind) {
  if (v === null || v === undefined) return "";
  switch (kind) {
    case "int": return Number(v).toLocaleString("en-US");
    case "pct": return v === 0 ? "0%" : (v * 100 >= 1 ? (v * 100).toFixed(1) : String(Number((v * 100).toPrecision(2)))) + "%";
    case "num": return num(v);
    case "bool": return v ? "\u2713 pass" : "\u2013";
    default: return String(v);
  }
}
