// Numbers, durations and names as the page writes them.

/** True for null and undefined (a value the server left out). */
export const missing = (value) => value === null || value === undefined;

/** True for a missing value and for the empty string (nothing to show). */
export const blank = (value) => missing(value) || value === "";

/** A value as text, or null when it is missing. */
export const textOf = (value) => (missing(value) ? null : String(value));

/** "1 file", "2 files" */
export const plural = (count, noun) => `${count} ${noun}${count === 1 ? "" : "s"}`;

/** The first 12 characters of a hash, then an ellipsis. */
export const abbrev = (hash) => `${hash.slice(0, 12)}…`;

export function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function fmt(value, digits = 4) {
  if (missing(value) || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return String(Number(value.toPrecision(digits)));
}

/** "max_new_tokens" -> "Max new tokens" */
export function label(name) {
  const words = name.replace(/[_-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}
