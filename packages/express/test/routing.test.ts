/** The routing fuzz of the test kit on Express 5: no request target reaches the MCP route unverified. */
import express from 'express';
import { expressRoutingFuzz } from './routing-apps.js';

expressRoutingFuzz('Express 5', express);
