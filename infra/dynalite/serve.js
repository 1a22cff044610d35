// DynamoDB for the load runs: dynalite (in memory) on 127.0.0.1:$DYNALITE_PORT, started by infra/scripts/dynalite.sh.
// dynalite 4.0.0 has no TransactWriteItems, which seeding and user, access and role writes use: this shim plays one
// as its Put / Delete / Update items sent to dynalite in order. Not atomic (a failed condition leaves the earlier
// items written) and not isolated: good enough for bench data written once, never for correctness tests.
// GET /c360/calls answers the number of calls served per operation, so a load run can count round trips per request.
'use strict'
const http = require('http')
const dynalite = require('dynalite')

const port = Number(process.env.DYNALITE_PORT || 4567)
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
const [dynaliteHandler] = server.listeners('request')
server.removeAllListeners('request')
const agent = new http.Agent({ keepAlive: true })
const OPERATIONS = { Put: 'PutItem', Delete: 'DeleteItem', Update: 'UpdateItem' }
const SHIM_HEADER = 'x-c360-transaction-item'
const calls = {}

function reply (res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/x-amz-json-1.0', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

// One single-item write sent back to dynalite over loopback, signed headers copied (dynalite checks their shape only).
function send (headers, operation, body) {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body)
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path: '/', agent,
      headers: {
        'Content-Type': 'application/x-amz-json-1.0',
        'Content-Length': Buffer.byteLength(text),
        'X-Amz-Target': `DynamoDB_20120810.${operation}`,
        Authorization: headers.authorization,
        'X-Amz-Date': headers['x-amz-date'],
        [SHIM_HEADER]: '1',
      },
    }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }))
    })
    req.on('error', reject)
    req.end(text)
  })
}

async function transactWriteItems (req, res, text) {
  const items = JSON.parse(text).TransactItems || []
  const reasons = items.map(() => ({ Code: 'None' }))
  for (const [i, item] of items.entries()) {
    const [kind] = Object.keys(item)
    if (!OPERATIONS[kind]) {
      return reply(res, 400, { __type: 'com.amazon.coral.validate#ValidationException', message: `${kind} is not played by infra/dynalite/serve.js` })
    }
    const { ReturnValuesOnConditionCheckFailure, ...write } = item[kind]
    const out = await send(req.headers, OPERATIONS[kind], write)
    if (out.status === 200) continue
    if (!String(out.body.__type).endsWith('#ConditionalCheckFailedException')) return reply(res, out.status, out.body)
    reasons[i] = { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' }
    return reply(res, 400, {
      __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
      message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
      CancellationReasons: reasons,
    })
  }
  reply(res, 200, {})
}

server.on('request', (req, res) => {
  if (req.method === 'GET' && req.url === '/c360/calls') return reply(res, 200, calls)
  const operation = String(req.headers['x-amz-target'] || '').split('.')[1]
  // The items of a transaction are part of its one call.
  if (operation && !req.headers[SHIM_HEADER]) calls[operation] = (calls[operation] || 0) + 1
  if (operation !== 'TransactWriteItems') return dynaliteHandler(req, res)
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => transactWriteItems(req, res, Buffer.concat(chunks).toString()).catch((err) => {
    reply(res, 500, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(err) })
  }))
})
server.listen(port, '127.0.0.1', () => console.log(`dynalite (with the TransactWriteItems shim) on http://127.0.0.1:${port}`))
