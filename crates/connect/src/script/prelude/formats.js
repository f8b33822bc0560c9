// CSV and XML.
import { check } from 'portcullis:prelude';
globalThis.cyclr_csv_parse = function (csv, delimiter, hasHeader) {
  return JSON.parse(check(__host_csv(String(csv), delimiter === undefined ? ',' : String(delimiter), !!hasHeader)));
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
globalThis.cyclr_xml_deserialize = function (xml) { return JSON.parse(check(__host_xml_deserialize(String(xml)))); };
