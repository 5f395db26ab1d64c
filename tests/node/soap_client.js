// node-soap (npm "soap") against a CRM 4.0 CrmService.asmx: WhoAmI, a DynamicEntity Create, a Retrieve.
// Usage: node soap_client.js WSDL URL ORG NAME -> prints one JSON line {who, id, retrieved}.
// Run by tests/integration/test_node_soap.py; install with `npm install --prefix tests/node`.
"use strict";
const soap = require("soap");

const WS = "http://schemas.microsoft.com/crm/2007/WebServices";
const CORE = "http://schemas.microsoft.com/crm/2007/CoreTypes";
const WS06 = "http://schemas.microsoft.com/crm/2006/WebServices";
const XSI = "http://www.w3.org/2001/XMLSchema-instance";

function esc(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

async function main() {
  const [wsdl, url, org, name] = process.argv.slice(2);
  const client = await soap.createClientAsync(wsdl, { endpoint: url });
  client.addSoapHeader(
    `<CrmAuthenticationToken xmlns="${WS}"><AuthenticationType xmlns="${CORE}">0</AuthenticationType>` +
      `<OrganizationName xmlns="${CORE}">${esc(org)}</OrganizationName></CrmAuthenticationToken>`
  );
  const [who] = await client.ExecuteAsync({
    $xml: `<Request xmlns="${WS}" xmlns:xsi="${XSI}" xsi:type="WhoAmIRequest" />`,
  });
  const [created] = await client.CreateAsync({
    $xml:
      `<entity xmlns="${WS}" xmlns:q1="${WS06}" xmlns:xsi="${XSI}" xsi:type="q1:DynamicEntity" Name="account">` +
      `<q1:Properties><q1:Property xsi:type="q1:StringProperty" Name="name">` +
      `<q1:Value>${esc(name)}</q1:Value></q1:Property></q1:Properties></entity>`,
  });
  const id = created.CreateResult;
  const [got] = await client.RetrieveAsync({
    $xml:
      `<entityName xmlns="${WS}">account</entityName><id xmlns="${WS}">${id}</id>` +
      `<columnSet xmlns="${WS}" xmlns:q="http://schemas.microsoft.com/crm/2006/Query" xmlns:xsi="${XSI}" xsi:type="q:ColumnSet"><q:Attributes><q:Attribute>name</q:Attribute></q:Attributes></columnSet>`,
  });
  console.log(JSON.stringify({ who: who, id: id, retrieved: got }));
}

main().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  if (err && err.body) console.error(String(err.body).slice(0, 2000));
  process.exit(1);
});
