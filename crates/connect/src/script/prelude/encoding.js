// `btoa` and `atob` with Cyclr's charset argument (they replace QuickJS's own), and `cyclr_sign`.
import { check } from 'portcullis:prelude';
globalThis.btoa = function (s, charset) { return check(__host_btoa(String(s), charset === undefined ? 'UTF-8' : String(charset))); };
globalThis.atob = function (s, charset) { return check(__host_atob(String(s), charset === undefined ? 'UTF-8' : String(charset))); };
globalThis.cyclr_sign = function (a, k, v) { return check(__host_sign(String(a), String(k), String(v))); };
