// Load test for the payments service.
//
// Each virtual user pays into an account of its own, keeps the balance it
// expects, and counts `payments_inconsistency` whenever the service reports a
// different one (in the payment's answer or on a later read). The counter gets
// a sample on every check, so it shows in the summary even when it stays 0.

import http from 'k6/http';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:18080';
const inconsistency = new Counter('payments_inconsistency');

export const options = {
  vus: Number(__ENV.VUS || 4),
  duration: __ENV.DURATION || '2s',
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'],
};

// A fresh prefix per test run, so runs against a long-lived service never
// share an account.
export function setup() {
  const stamp = Date.now().toString(36);
  const salt = Math.floor(Math.random() * 36 ** 4).toString(36);
  return { run: `${stamp}${salt}` };
}

// Module state is per virtual user.
let expected = 0;

function checkBalance(response) {
  let reported = null;
  try {
    reported = response.json('balance');
  } catch (e) {
    reported = null;
  }
  inconsistency.add(reported === expected ? 0 : 1);
}

function payAndRead(account) {
  const amount = 100 + Math.floor(Math.random() * 9900);
  const paid = http.post(
    `${BASE_URL}/payments`,
    JSON.stringify({ account, amount }),
    { headers: { 'Content-Type': 'application/json' }, tags: { name: 'POST /payments' } },
  );
  if (paid.status !== 201) {
    return;
  }
  expected += amount;
  checkBalance(paid);

  const read = http.get(`${BASE_URL}/accounts/${account}`, {
    tags: { name: 'GET /accounts/:id' },
  });
  if (read.status === 200) {
    checkBalance(read);
  }
}

export default function (data) {
  payAndRead(`acct-${data.run}-${__VU}`);
  // A short pause keeps the request rate modest on a small machine.
  sleep(0.02);
}
