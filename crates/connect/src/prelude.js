// The host's own JavaScript, loaded into every script context as bytecode (see script.rs).
class AuthRefreshException extends Error {
  constructor(message) { super(message === undefined ? 'AuthRefreshException' : message); this.name = 'AuthRefreshException'; }
}
class AuthSessionException extends Error {
  constructor(message) { super(message === undefined ? 'AuthSessionException' : message); this.name = 'AuthSessionException'; }
}
globalThis.AuthRefreshException = AuthRefreshException;
globalThis.AuthSessionException = AuthSessionException;
globalThis.console = { log: function () {
  __host_log(Array.prototype.map.call(arguments, function (a) { return typeof a === 'string' ? a : JSON.stringify(a); }).join(' '));
} };
// Host errors come back as strings starting with NUL; __check turns them into JS errors.
globalThis.btoa = function (s, charset) { return __check(__host_btoa(String(s), charset === undefined ? 'UTF-8' : String(charset))); };
globalThis.atob = function (s, charset) { return __check(__host_atob(String(s), charset === undefined ? 'UTF-8' : String(charset))); };
globalThis.cyclr_sign = function (a, k, v) { return __check(__host_sign(String(a), String(k), String(v))); };
globalThis.cyclr_csv_parse = function (csv, delimiter, hasHeader) {
  return JSON.parse(__check(__host_csv(String(csv), delimiter === undefined ? ',' : String(delimiter), !!hasHeader)));
};
// In JavaScript so that key order is the object's own (Json.NET convention: @attributes, #text, arrays repeat).
globalThis.cyclr_xml_serialize = function (obj) {
  function esc(t) { return String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;'); }
  function el(name, v) {
    if (Array.isArray(v)) return v.map(function (i) { return el(name, i); }).join('');
    if (v === null || v === undefined) return '<' + name + ' />';
    if (typeof v !== 'object') return '<' + name + '>' + esc(v) + '</' + name + '>';
    var attrs = '', inner = '';
    Object.keys(v).forEach(function (k) {
      if (k.charAt(0) === '@') attrs += ' ' + k.slice(1) + '="' + esc(v[k]) + '"';
      else if (k === '#text') inner += esc(v[k]);
      else inner += el(k, v[k]);
    });
    return '<' + name + attrs + '>' + inner + '</' + name + '>';
  }
  if (obj === null || typeof obj !== 'object') return esc(obj);
  return Object.keys(obj).map(function (k) { return el(k, obj[k]); }).join('');
};
globalThis.cyclr_xml_deserialize = function (xml) { return JSON.parse(__check(__host_xml_deserialize(String(xml)))); };
function __check(r) { if (r.charCodeAt(0) === 0) throw new Error(r.slice(1)); return r; }
// cyclr_storage_* (per connector) and cycle_storage_* (per connector account); values are JSON.
['cyclr', 'cycle'].forEach(function (scope) {
  function call(op, key, value) {
    return JSON.parse(__check(__host_storage(scope, op, key === undefined ? '' : String(key),
      value === undefined ? 'null' : JSON.stringify(value))));
  }
  var p = scope + '_storage_';
  globalThis[p + 'get'] = function (key) { return call('get', key); };
  globalThis[p + 'set'] = function (key, value) { return call('set', key, value); };
  globalThis[p + 'append'] = function (key, value) { return call('append', key, value); };
  globalThis[p + 'delete'] = function (key) { return call('delete', key); };
  globalThis[p + 'delete_all'] = function () { return call('delete_all'); };
  globalThis[p + 'list_keys'] = function () { return call('list_keys'); };
  globalThis[p + 'list_values'] = function () { return call('list_values'); };
  globalThis[p + 'increment'] = function (key, amount) { return call('increment', key, amount === undefined ? 1 : Number(amount)); };
  globalThis[p + 'decrement'] = function (key, amount) { return call('increment', key, -(amount === undefined ? 1 : Number(amount))); };
});
globalThis.http_request = function (request) {
  var r = JSON.parse(__host_http(JSON.stringify(request)));
  if (r.__error !== undefined) throw new Error(r.__error);
  return r;
};
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
