// cyclr_storage_* (per connector) and cycle_storage_* (per connector account); values are JSON.
import { check } from 'portcullis:prelude';
['cyclr', 'cycle'].forEach(function (scope) {
  function call(op, key, value) {
    return JSON.parse(check(__host_storage(scope, op, key === undefined ? '' : String(key),
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
