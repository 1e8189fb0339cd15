import {
  Body,
  Controller,
  Get,
  NotFoundException,
  Param,
  Post,
  Query,
  Req,
  Res,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { STAFF_ROLES } from '#db/entities/staff-user.entity.js';
import { StaffSessionsService } from '#staff/staff-sessions.service.js';
import { type FieldErrors, StaffUsersService, type StaffUserRow } from '#staff/staff-users.service.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { notice, sendPage, staffOf } from './console-forms.js';
import { field } from './console-http.js';
import { ConsolePagesService } from './console-pages.service.js';
import { Roles, StaffGuard } from './staff.guard.js';

const NOTICES: Record<string, string> = {
  created: 'User created. Give them their initial password through a channel other than email.',
  deleted: 'User deleted. Their sessions have ended.',
  'password-changed': 'Password changed. Every other session of this user has ended.',
};

function userId(raw: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(raw)) throw new NotFoundException('There is no such user.');
  return Number(raw);
}

/** User management (admins only): list, create, set a password, delete with confirmation. */
@ApiExcludeController()
@Controller('admin/users')
@UseGuards(StaffGuard)
@Roles('admin')
@UseFilters(ConsoleExceptionFilter)
export class ConsoleUsersController {
  constructor(
    private readonly users: StaffUsersService,
    private readonly sessions: StaffSessionsService,
    private readonly pages: ConsolePagesService,
  ) {}

  @Get()
  async list(@Query('notice') key: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    await this.listPage(req, reply, 200, {
      notice: notice(NOTICES, key),
      values: { role: 'marketer' },
    });
  }

  @Post()
  async create(@Body() body: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const input = { email: field(body, 'email'), role: field(body, 'role'), password: field(body, 'password') };
    const result = await this.users.create(input);
    if (!result.ok) {
      await this.listPage(req, reply, 400, { errors: result.errors, values: { email: input.email, role: input.role } });
      return;
    }
    await reply.redirect('/admin/users?notice=created', 303);
  }

  @Get(':id')
  async show(
    @Param('id') id: string,
    @Query('notice') key: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const user = await this.found(userId(id));
    await this.userPage(req, reply, 200, user, { notice: notice(NOTICES, key) });
  }

  @Post(':id/password')
  async setPassword(
    @Param('id') id: string,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const staff = staffOf(req);
    const user = await this.found(userId(id));
    const password = field(body, 'password');
    if (password !== field(body, 'confirm')) {
      await this.userPage(req, reply, 400, user, { errors: { confirm: 'The two passwords do not match' } });
      return;
    }
    // Changing your own password keeps you signed in here; every other session of that user ends.
    const keep = user.id === staff.userId ? staff.sessionId : undefined;
    const result = await this.users.changePassword(user.id, password, keep);
    if (!result.ok) {
      await this.userPage(req, reply, 400, user, { errors: result.errors });
      return;
    }
    await reply.redirect(`/admin/users/${user.id}?notice=password-changed`, 303);
  }

  @Get(':id/delete')
  async confirmDelete(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const user = await this.found(userId(id));
    await this.deletePage(req, reply, 200, user);
  }

  @Post(':id/delete')
  async delete(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const staff = staffOf(req);
    const user = await this.found(userId(id));
    const outcome = await this.users.delete(user.id, staff.userId);
    if (outcome === 'not-found') throw new NotFoundException('There is no such user.');
    if (outcome === 'self') {
      await this.deletePage(req, reply, 400, user, 'You cannot delete your own account. Ask another admin.');
      return;
    }
    if (outcome === 'last-admin') {
      await this.deletePage(req, reply, 400, user, 'This is the last admin: create another admin first.');
      return;
    }
    await reply.redirect('/admin/users?notice=deleted', 303);
  }

  private async found(id: number): Promise<StaffUserRow> {
    const user = await this.users.find(id);
    if (!user) throw new NotFoundException('There is no such user.');
    return user;
  }

  private async listPage(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    vars: { notice?: string; errors?: FieldErrors; values: { email?: string; role?: string } },
  ): Promise<void> {
    const me = staffOf(req);
    const users = (await this.users.list()).map((u) => ({ ...u, isMe: u.id === me.userId }));
    const roles = STAFF_ROLES.map((r) => ({ value: r, selected: r === (vars.values.role || 'marketer') }));
    await sendPage(
      reply,
      status,
      this.pages.render('users', { title: 'Users', staff: me, section: 'users' }, { ...vars, users, roles }),
    );
  }

  private async userPage(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    user: StaffUserRow,
    vars: { notice?: string; errors?: FieldErrors },
  ): Promise<void> {
    const me = staffOf(req);
    const sessions = await this.sessions.countForUser(user.id);
    await sendPage(
      reply,
      status,
      this.pages.render(
        'user',
        { title: user.email, staff: me, section: 'users' },
        { ...vars, user, isMe: user.id === me.userId, sessions },
      ),
    );
  }

  private async deletePage(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    user: StaffUserRow,
    error?: string,
  ): Promise<void> {
    const me = staffOf(req);
    await sendPage(
      reply,
      status,
      this.pages.render(
        'user-delete',
        { title: `Delete ${user.email}`, staff: me, section: 'users' },
        { user, error, isMe: user.id === me.userId },
      ),
    );
  }
}
