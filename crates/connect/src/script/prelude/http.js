// `http_request`, over the host's client (credential rule, egress policy, the call's budget).
globalThis.http_request = function (request) {
  var r = JSON.parse(__host_http(JSON.stringify(request)));
  if (r.__error !== undefined) throw new Error(r.__error);
  return r;
};
