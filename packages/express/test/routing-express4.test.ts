/** The routing fuzz of the test kit on Express 4 (the `express4` alias): no request target reaches the MCP route unverified. */
import express4 from 'express4';
import { expressRoutingFuzz } from './routing-apps.js';

expressRoutingFuzz('Express 4', express4);
