// `console.log`, over the host's log (__host_log: secrets masked, lines capped).
globalThis.console = { log: function () {
  __host_log(Array.prototype.map.call(arguments, function (a) { return typeof a === 'string' ? a : JSON.stringify(a); }).join(' '));
} };
