// What more than one part of the studio reads or changes.

export const KEY_STORE = "genlab-api-key";

export const state = {
  health: null,
  runs: [], // GET /v1/models data
  loaded: false, // runs listed at least once
  details: new Map(), // run id -> GET /v1/runs/{id}
  key: sessionStorage.getItem(KEY_STORE) || "",
  view: null,
  runId: null, // the run picked in Generate
  mode: null, // the form shown in Generate
  abort: null, // the running generation's AbortController
  pick: 0, // increases on each run picked: late answers for an older pick are dropped
};
