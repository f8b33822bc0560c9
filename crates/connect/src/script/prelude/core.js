// The host's own JavaScript that every context gets, as bytecode (see modules.rs): the exception classes, the
// read-back of globals and the level and handler runners. The built-ins are parts of their own, loaded into a
// context only when one of its scripts names them.
class AuthRefreshException extends Error {
  constructor(message) { super(message === undefined ? 'AuthRefreshException' : message); this.name = 'AuthRefreshException'; }
}
class AuthSessionException extends Error {
  constructor(message) { super(message === undefined ? 'AuthSessionException' : message); this.name = 'AuthSessionException'; }
}
globalThis.AuthRefreshException = AuthRefreshException;
globalThis.AuthSessionException = AuthSessionException;
// Host errors come back as strings starting with NUL; check turns them into JS errors.
export function check(r) { if (r.charCodeAt(0) === 0) throw new Error(r.slice(1)); return r; }
// Reads back every writable global (WRITABLE_GLOBALS); `undefined` becomes null.
globalThis.__collect = function () {
  var names = ['method_endpoint', 'method_request', 'method_request_headers', 'method_request_parameters',
    'method_request_mergefields', 'method_response', 'method_response_headers', 'method_error', 'action_data',
    'cycle_variables', 'next_last_successful_run_date'];
  var out = {};
  names.forEach(function (n) { out[n] = globalThis[n] === undefined ? null : globalThis[n]; });
  return JSON.stringify(out);
};
globalThis.__levels = [];
// What a throw means to the host: 'oom', or 'error:' + the message.
function __thrown(e) {
  var isObj = e !== null && typeof e === 'object';
  var m;
  try { m = isObj && e.message !== undefined ? String(e.message) : String(e); } catch (_) { m = 'uncaught exception'; }
  if (e instanceof InternalError && m.indexOf('out of memory') >= 0) return 'oom';
  return 'error:' + m;
}
globalThis.__invoke = function (level, event) {
  var h = __levels[level][event];
  if (typeof h !== 'function') return 'absent';
  try {
    var r = h();
    return r === true ? 'true' : r === false ? 'false' : (r ? 'truthy' : 'falsy');
  } catch (e) {
    var isObj = e !== null && typeof e === 'object';
    if (e instanceof AuthRefreshException || (isObj && e.name === 'AuthRefreshException')) return 'refresh';
    if (e instanceof AuthSessionException || (isObj && e.name === 'AuthSessionException')) return 'session';
    return __thrown(e);
  }
};
// Runs a level's top-level code. Caught here, where the engine still reports an out-of-memory as such (past
// this frame it surfaces as a bare null).
globalThis.__level = function (wrapped) {
  try { __levels.push(wrapped()); return ''; } catch (e) { return __thrown(e); }
};
