// The edge under abuse (issue 18), on one public stack with small HTTP/2 and body limits
// (hardening-stack.ts): hostile text, malformed requests, then HTTP/2 and slow-body limits, each
// in a file of its own that ends by checking no service logged an error and every one answers.
import { hardeningHttp2Cases } from './hardening-http2.cases.js';
import { hardeningMalformedCases } from './hardening-malformed.cases.js';
import { useHardeningStack } from './hardening-stack.js';
import { hardeningTextCases } from './hardening-text.cases.js';

useHardeningStack();

hardeningTextCases();
hardeningMalformedCases();
hardeningHttp2Cases();
