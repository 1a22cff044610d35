// DynamoDB for the load runs: dynalite (in memory) on 127.0.0.1:$DYNALITE_PORT, started by infra/scripts/dynalite.sh.
// dynalite 4.0.0 has no TransactWriteItems, which seeding and user, access and role writes use: this shim plays one
// as its Put / Delete / Update items sent to dynalite in order. Not isolated, and by default not atomic (a failed
// condition leaves the earlier items written): good enough for bench data written once, never for correctness tests.
// DYNALITE_TRANSACTIONS=rollback (what `make dev` runs) reads each item before writing it and, when a later condition
// fails, puts the earlier items back as they were: all or nothing for one user at a time, at one more read per item.
// GET /c360/calls answers the number of calls served per operation, so a load run can count round trips per request,
// and under `items_read` the items read per reading operation (Query and Scan: ScannedCount, the items evaluated
// before any filter; GetItem: 1 when an Item came back; BatchGetItem: the items of Responses), taken from the answers.
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
const ROLLBACK = process.env.DYNALITE_TRANSACTIONS === 'rollback'
const keySchemas = new Map()
const calls = {}
const itemsRead = {}
// Event-loop stalls (a garbage collection, a long synchronous step): how many blocked it 100 ms or more, and the
// longest since the last GET /c360/calls, so that a load run can tell the emulator's pauses from the service's.
const stalls = { count: 0, longest_ms: 0 }
let due = Date.now() + 10
setInterval(() => {
  const late = Date.now() - due
  if (late >= 100) stalls.count += 1
  stalls.longest_ms = Math.max(stalls.longest_ms, late)
  due = Date.now() + 10
}, 10).unref()
// Items read, from the JSON answer of a reading operation; the others' answers are never looked at.
const ITEMS_READ = {
  // dynalite writes ScannedCount first (db/index.js `queryTable`): read it without parsing the items.
  Query: scannedCount,
  Scan: scannedCount,
  GetItem: (body) => (body.startsWith('{"Item":') || JSON.parse(body).Item ? 1 : 0),
  BatchGetItem: (body) => Object.values(JSON.parse(body).Responses || {}).reduce((n, items) => n + items.length, 0),
}

function scannedCount (body) {
  const head = /^\{"ScannedCount":(\d+)/.exec(body)
  return head ? Number(head[1]) : Number(JSON.parse(body).ScannedCount) || 0
}

// Captures what dynalite writes for this answer and counts its items once it is complete (200 answers only).
function countItemsRead (operation, res) {
  const chunks = []
  const keep = (chunk, encoding) => {
    if (chunk != null && typeof chunk !== 'function') {
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : chunk)
    }
  }
  const { write, end } = res
  res.write = function (chunk, encoding, ...rest) {
    keep(chunk, encoding)
    return write.call(this, chunk, encoding, ...rest)
  }
  res.end = function (chunk, encoding, ...rest) {
    // dynalite answers in one res.end(string): no copy then.
    const body = chunks.length === 0 && typeof chunk === 'string' ? chunk : (keep(chunk, encoding), Buffer.concat(chunks).toString())
    if (res.statusCode === 200 && body) {
      try {
        itemsRead[operation] = (itemsRead[operation] || 0) + ITEMS_READ[operation](body)
      } catch (err) {
        console.error(`[serve.js] cannot count the items read by a ${operation} answer: ${err}`)
      }
    }
    return end.call(this, chunk, encoding, ...rest)
  }
}

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

// The key attributes of a table (DescribeTable once per table), to read a Put's item before it is replaced.
async function keyOf (headers, table, write) {
  if (write.Key) return write.Key
  if (!keySchemas.has(table)) {
    const out = await send(headers, 'DescribeTable', { TableName: table })
    keySchemas.set(table, (out.body.Table?.KeySchema || []).map((k) => k.AttributeName))
  }
  return Object.fromEntries(keySchemas.get(table).map((name) => [name, write.Item[name]]))
}

// Puts back what the written items held before the transaction, last written first.
async function rollBack (headers, written) {
  for (const { table, key, before } of written.reverse()) {
    if (before) await send(headers, 'PutItem', { TableName: table, Item: before })
    else await send(headers, 'DeleteItem', { TableName: table, Key: key })
  }
}

async function transactWriteItems (req, res, text) {
  const items = JSON.parse(text).TransactItems || []
  const reasons = items.map(() => ({ Code: 'None' }))
  const written = []
  for (const [i, item] of items.entries()) {
    const [kind] = Object.keys(item)
    if (!OPERATIONS[kind]) {
      return reply(res, 400, { __type: 'com.amazon.coral.validate#ValidationException', message: `${kind} is not played by infra/dynalite/serve.js` })
    }
    const { ReturnValuesOnConditionCheckFailure, ...write } = item[kind]
    let undo = null
    if (ROLLBACK) {
      const key = await keyOf(req.headers, write.TableName, write)
      const read = await send(req.headers, 'GetItem', { TableName: write.TableName, Key: key, ConsistentRead: true })
      undo = { table: write.TableName, key, before: read.body.Item }
    }
    const out = await send(req.headers, OPERATIONS[kind], write)
    if (out.status === 200) {
      if (undo) written.push(undo)
      continue
    }
    await rollBack(req.headers, written)
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
  if (req.method === 'GET' && req.url === '/c360/calls') {
    const seen = { ...stalls }
    stalls.longest_ms = 0
    return reply(res, 200, { ...calls, items_read: itemsRead, stalls: seen })
  }
  const operation = String(req.headers['x-amz-target'] || '').split('.')[1]
  // The items of a transaction are part of its one call.
  if (operation && !req.headers[SHIM_HEADER]) calls[operation] = (calls[operation] || 0) + 1
  // The shim's own reads (rollback) are not the service's.
  if (Object.hasOwn(ITEMS_READ, operation) && !req.headers[SHIM_HEADER]) countItemsRead(operation, res)
  if (operation !== 'TransactWriteItems') return dynaliteHandler(req, res)
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => transactWriteItems(req, res, Buffer.concat(chunks).toString()).catch((err) => {
    reply(res, 500, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(err) })
  }))
})
server.listen(port, '127.0.0.1', () => console.log(`dynalite (with the TransactWriteItems shim) on http://127.0.0.1:${port}`))
