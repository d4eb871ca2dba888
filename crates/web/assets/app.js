// fom-qbo: the treasurer's pages. Plain JavaScript as native ES modules (js/*.js), no build
// step, no inline script or style (the content security policy forbids both). The server
// renders a shell per page; the modules load the data from the JSON API and keep the page in
// step with it. Errors are shown as readable inline messages (never alert(), never raw JSON).
//
// This entry only starts the page that `data-page` on <body> names.

import { depositsPage } from './js/list.js';
import { depositPage } from './js/deposit.js';
import { auditPage } from './js/audit.js';
import { settingsPage } from './js/settings.js';
import { operationsPage } from './js/operations.js';
import { statementsPage } from './js/statements.js';

const kind = document.body.dataset.page;
if (kind === 'deposits') depositsPage();
else if (kind === 'deposit') depositPage();
else if (kind === 'audit') auditPage();
else if (kind === 'settings') settingsPage();
else if (kind === 'operations') operationsPage();
else if (kind === 'statements') statementsPage();
